package collector

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/edge/agentauth"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// Agent authentication (see internal/edge/agentauth). Every collector
// request but enrolment carries the agent's credential; it is checked
// before the body is read, so a refused request writes nothing. The
// credential fixes who the agent is: a request naming another agent_uid is
// refused with 403, and an agent reads and acknowledges only its own
// commands.

// errNoAuthority fails every request closed when the collector was built
// without an Authority.
var errNoAuthority = errors.New("collector: no agent authority configured")

// authenticate returns the agent the request's credential belongs to
// (token is the bearer token, "" when absent).
func (c *Collector) authenticate(ctx context.Context, token string) (string, error) {
	if c.opts.Auth == nil {
		return "", c.reject("unauthenticated", 0, &apperr.Error{Code: apperr.Unauthenticated,
			Field: protocol.HeaderAuthorization, Message: errNoAuthority.Error()})
	}
	uid, err := c.opts.Auth.Authenticate(ctx, token)
	switch {
	case errors.Is(err, agentauth.ErrMissing):
		return "", c.reject("unauthenticated", 0, &apperr.Error{Code: apperr.Unauthenticated,
			Field: protocol.HeaderAuthorization, Message: "an agent credential is required (Authorization: Bearer <credential>); enrol at " + protocol.PathAgentEnroll + " first"})
	case errors.Is(err, agentauth.ErrInvalid):
		return "", c.reject("unauthenticated", 0, &apperr.Error{Code: apperr.Unauthenticated,
			Field: protocol.HeaderAuthorization, Message: "unknown, replaced or revoked agent credential; enrol again"})
	case err != nil:
		return "", err
	}
	return uid, nil
}

// authHTTP authenticates an HTTP request.
func (c *Collector) authHTTP(r *http.Request) (string, error) {
	return c.authenticate(r.Context(), protocol.BearerToken(r.Header.Get(protocol.HeaderAuthorization)))
}

// wrongAgent is the 403 for a request naming another agent than its
// credential's.
func (c *Collector) wrongAgent(field, claimed, uid string, events int) *apperr.Error {
	if c.opts.Auth != nil {
		c.opts.Auth.WrongAgent()
	}
	return c.reject("wrong_agent", events, &apperr.Error{Code: apperr.Forbidden, Field: field,
		Message: fmt.Sprintf("the credential belongs to agent %q, not %q", uid, claimed)})
}

// checkBatchAgent binds a validated batch (whose events' empty agent_uid
// were filled from the batch's, itself filled with uid when empty) to the
// authenticated agent: another agent_uid anywhere is refused.
func (c *Collector) checkBatchAgent(uid string, b *protocol.EventBatch) error {
	if b.AgentUID != uid {
		return c.wrongAgent("agent_uid", b.AgentUID, uid, len(b.Events))
	}
	for i := range b.Events {
		if e := &b.Events[i]; e.AgentUID != uid {
			return c.wrongAgent("events["+strconv.Itoa(i)+"].agent_uid", e.AgentUID, uid, len(b.Events))
		}
	}
	return nil
}

// KindEnrolmentSecret is the throttle kind of enrolment attempts.
const KindEnrolmentSecret = "enrolment_secret"

// Enroll exchanges the organisation's enrolment secret for the agent's own
// credential (shown once), replacing any credential the agent had. src is
// the client's address: failed attempts are throttled per source and per
// secret prefix (429 with Retry-After).
func (c *Collector) Enroll(ctx context.Context, src netip.Addr, req protocol.AgentEnrollRequest) (*protocol.AgentEnrollResponse, error) {
	if c.opts.Auth == nil {
		return nil, &apperr.Error{Code: apperr.Unavailable, Reason: protocol.ErrCodeNotEnrollable, Message: errNoAuthority.Error(), RetryAfter: c.opts.RetryAfter}
	}
	h := sha256.Sum256([]byte(req.EnrolmentSecret))
	att := throttle.Attempt{Kind: KindEnrolmentSecret, Source: src, Prefix: secretPrefix(req.EnrolmentSecret), Credential: h[:]}
	if dec := c.throttle.Check(att); !dec.OK {
		why := "too many failed enrolments from this address"
		if dec.By == throttle.ByPrefix {
			why = "too many failed enrolments with this secret"
		}
		return nil, c.reject("throttled", 0, &apperr.Error{Code: apperr.Throttled,
			Field: "enrolment_secret", Message: why + "; retry later", RetryAfter: dec.RetryAfter})
	}
	done := false
	defer func() {
		if !done {
			c.throttle.Done(att)
		}
	}()
	if err := protocol.CheckText("enrolment_secret", req.EnrolmentSecret, true, protocol.MaxShortField); err != nil {
		c.opts.Auth.InvalidEnrolment()
		return nil, c.reject("validation", 0, fieldError(err))
	}
	reg := protocol.AgentRegistration{AgentUID: req.AgentUID, ComputerName: req.ComputerName, AgentVersion: req.AgentVersion, OSVersion: req.OSVersion}
	if err := protocol.ValidateAgentRegistration(&reg); err != nil {
		c.opts.Auth.InvalidEnrolment()
		return nil, c.reject("validation", 0, fieldError(err))
	}
	cred, err := c.opts.Auth.Enroll(ctx, protocol.AgentEnrollRequest{EnrolmentSecret: req.EnrolmentSecret, AgentUID: reg.AgentUID,
		ComputerName: reg.ComputerName, AgentVersion: reg.AgentVersion, OSVersion: reg.OSVersion})
	switch {
	case errors.Is(err, agentauth.ErrBadSecret):
		done = true
		c.enrolFailed(att)
		return nil, c.reject("bad_enrolment_secret", 0, &apperr.Error{Code: apperr.Unauthenticated,
			Field: "enrolment_secret", Message: "does not match this organisation's enrolment secret"})
	case errors.Is(err, agentauth.ErrNoVerifier):
		return nil, c.reject("enrolment_unavailable", 0, &apperr.Error{Code: apperr.Unavailable, Reason: protocol.ErrCodeNotEnrollable,
			Message: "this gateway has not yet received its organisation's enrolment verifier from the cloud; retry later", RetryAfter: c.opts.RetryAfter})
	case err != nil:
		return nil, err
	}
	done = true
	c.throttle.Succeed(att)
	c.agents.Seen(reg, true)
	return &protocol.AgentEnrollResponse{AgentUID: reg.AgentUID, Credential: cred, GatewayID: c.opts.GatewayID}, nil
}

// enrolFailed is the one place a failed enrolment attempt is counted for
// throttling (the attempt is also counted in
// gateway_agent_enrolments_total{result="bad_secret"} by agentauth and in
// gateway_requests_rejected_total{reason="bad_enrolment_secret"} here).
func (c *Collector) enrolFailed(att throttle.Attempt) {
	reason := "unknown"
	if !strings.HasPrefix(att.Prefix, protocol.EnrolmentSecretPrefix) {
		reason = "malformed"
	}
	c.throttle.Fail(att, reason)
}

// secretPrefix is the non-secret part of an enrolment secret that says
// which secret a guess aims at: the prefix and 4 characters ("" for
// input that is not a secret at all).
func secretPrefix(s string) string {
	if !strings.HasPrefix(s, protocol.EnrolmentSecretPrefix) || len(s) < len(protocol.EnrolmentSecretPrefix)+4 {
		return ""
	}
	return s[:len(protocol.EnrolmentSecretPrefix)+4]
}

func (c *Collector) handleEnroll(w http.ResponseWriter, r *http.Request) (int, error) {
	if err := c.requireType(r, "application/json"); err != nil {
		return 0, err
	}
	body, err := c.body(w, r, 64<<10)
	if err != nil {
		return 0, err
	}
	var req protocol.AgentEnrollRequest
	if err := c.decodeJSON(body, &req, 0); err != nil {
		return 0, err
	}
	resp, err := c.Enroll(r.Context(), throttle.Source(r, nil), req)
	if err != nil {
		return 0, err
	}
	w.Header().Set("Cache-Control", "no-store")
	c.writeJSON(w, http.StatusCreated, resp)
	return http.StatusCreated, nil
}
