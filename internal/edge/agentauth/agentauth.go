// Package agentauth is how desktop agents prove who they are to the
// gateway. An agent enrols with its organisation's enrolment secret and
// receives its own credential (256 random bits, shown once); every
// collector request then carries the credential, which fixes the agent's
// identity. The gateway stores only the credential's SHA-256 (in the
// buffer's agent_credentials table) and only a verifier of the enrolment
// secret (its SHA-256, learned from the cloud), never either secret.
//
// Verified credentials are cached in memory, so authenticating a request
// costs one SHA-256 and one map lookup; a miss reads the buffer once.
// Re-enrolment and revocation remove the old credential from the buffer
// and the cache together, and a lookup racing with them cannot put a
// revoked credential back into the cache (see epoch).
package agentauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Errors of Enroll and Authenticate.
var (
	// ErrBadSecret: the enrolment secret does not match the organisation's.
	ErrBadSecret = errors.New("agentauth: wrong enrolment secret")
	// ErrNoVerifier: the gateway does not know its organisation's enrolment
	// verifier yet (not provisioned, cloud unreachable since start, or the
	// organisation has no enrolment secret).
	ErrNoVerifier = errors.New("agentauth: this gateway cannot enrol agents yet: it has no enrolment verifier from the cloud")
	// ErrMissing: the request carries no credential.
	ErrMissing = errors.New("agentauth: no agent credential (Authorization: Bearer <credential>)")
	// ErrInvalid: the credential is unknown, replaced by a re-enrolment or
	// revoked.
	ErrInvalid = errors.New("agentauth: unknown or revoked agent credential")
)

// stateVerifier is the buffer state key of the last verifier received.
const stateVerifier = "enrolment_verifier"

// DefaultCacheSize bounds the cache of verified credentials.
const DefaultCacheSize = 100_000

// refreshMinInterval spaces the verifier refreshes a wrong secret triggers.
const refreshMinInterval = 10 * time.Second

// Options configures an Authority.
type Options struct {
	// Refresh, when set, fetches the current verifier from the cloud. A
	// wrong secret triggers it (at most every 10 s) so that a secret just
	// rotated in the cloud is accepted at once. It returns an error
	// wrapping ErrNoVerifier when it cannot ask yet (not provisioned).
	Refresh func(ctx context.Context) (string, error)
	// CacheSize bounds the in-memory cache (DefaultCacheSize).
	CacheSize  int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// Authority enrols and authenticates agents.
type Authority struct {
	buf  *buffer.Buffer
	opts Options
	log  *slog.Logger
	now  func() time.Time

	mu          sync.RWMutex
	verifier    []byte // SHA-256 of the enrolment secret; nil when unknown
	byHash      map[[32]byte]string
	byUID       map[string][32]byte
	epoch       uint64 // bumped by every removal; see Authenticate
	lastRefresh time.Time
	refreshMu   sync.Mutex

	enrolments *prometheus.CounterVec
	failures   *prometheus.CounterVec
	enrolled   chan struct{} // signalled (never blocking) after an enrolment

	reenrolments prometheus.Counter
}

// New returns an Authority over buf, with the verifier last stored in it.
func New(ctx context.Context, buf *buffer.Buffer, opts Options) (*Authority, error) {
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	a := &Authority{buf: buf, opts: opts, log: opts.Logger, now: opts.Now,
		byHash: map[[32]byte]string{}, byUID: map[string][32]byte{}, enrolled: make(chan struct{}, 1),
		enrolments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_agent_enrolments_total",
			Help: "Agent enrolment attempts by result: ok, bad_secret (wrong enrolment secret, 401), unavailable (no verifier yet, 503), invalid (400).",
		}, []string{"result"}),
		reenrolments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_agent_reenrolments_total",
			Help: "Enrolments that replaced (revoked) the credential an agent_uid already had: a reinstall, or someone with the enrolment secret claiming that agent.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_agent_auth_failures_total",
			Help: "Collector requests refused for the agent's credential: missing or invalid (401), wrong_agent (403: acting as another agent).",
		}, []string{"reason"}),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	for _, r := range []string{"ok", "bad_secret", "unavailable", "invalid"} {
		a.enrolments.WithLabelValues(r)
	}
	for _, r := range []string{"missing", "invalid", "wrong_agent"} {
		a.failures.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(a.enrolments, a.failures, a.reenrolments)
	}
	v, err := buf.State(ctx, stateVerifier)
	if err != nil {
		return nil, fmt.Errorf("agentauth: %w", err)
	}
	if v != "" {
		if a.verifier, err = parseVerifier(v); err != nil {
			return nil, fmt.Errorf("agentauth: stored enrolment verifier: %w", err)
		}
	}
	return a, nil
}

// parseVerifier decodes "sha256:<64 hex digits>"; "" means none.
func parseVerifier(v string) ([]byte, error) {
	if v == "" {
		return nil, nil
	}
	h, ok := strings.CutPrefix(v, protocol.VerifierSHA256)
	if !ok {
		return nil, fmt.Errorf("verifier must start with %q", protocol.VerifierSHA256)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return nil, errors.New("verifier must hold 64 hex digits")
	}
	return b, nil
}

// Verifier returns the verifier of secret, as the cloud stores and sends
// it: "sha256:" and the hex SHA-256 of the secret.
func Verifier(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return protocol.VerifierSHA256 + hex.EncodeToString(h[:])
}

// SetVerifier installs the verifier the cloud sent ("" when the
// organisation has no enrolment secret: enrolment is then refused) and
// stores it in the buffer, so enrolment works across a restart while the
// cloud is unreachable.
func (a *Authority) SetVerifier(ctx context.Context, v string) error {
	b, err := parseVerifier(v)
	if err != nil {
		return fmt.Errorf("agentauth: enrolment verifier from the cloud: %w", err)
	}
	a.mu.Lock()
	same := subtle.ConstantTimeCompare(b, a.verifier) == 1 && (b == nil) == (a.verifier == nil)
	a.verifier = b
	a.mu.Unlock()
	if same {
		return nil
	}
	if err := a.buf.SetState(ctx, stateVerifier, v); err != nil {
		return fmt.Errorf("agentauth: %w", err)
	}
	a.log.Info("enrolment verifier updated", "enrolment_possible", b != nil)
	return nil
}

// SeedVerifier installs v (from configuration) only when no verifier is
// known yet; the cloud's later answer replaces it.
func (a *Authority) SeedVerifier(ctx context.Context, v string) error {
	if v == "" || a.HasVerifier() {
		return nil
	}
	return a.SetVerifier(ctx, v)
}

// HasVerifier reports whether agents can enrol.
func (a *Authority) HasVerifier() bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.verifier != nil
}

// secretMatches compares secret with the verifier in constant time.
func (a *Authority) secretMatches(secret string) (bool, error) {
	h := sha256.Sum256([]byte(secret))
	a.mu.RLock()
	v := a.verifier
	a.mu.RUnlock()
	if v == nil {
		return false, ErrNoVerifier
	}
	return subtle.ConstantTimeCompare(h[:], v) == 1, nil
}

// refresh asks the cloud for the verifier, at most every 10 s.
func (a *Authority) refresh(ctx context.Context) {
	if a.opts.Refresh == nil {
		return
	}
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	if now := a.now(); now.Sub(a.lastRefresh) < refreshMinInterval {
		return
	} else {
		a.lastRefresh = now
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := a.opts.Refresh(ctx)
	if errors.Is(err, ErrNoVerifier) {
		a.lastRefresh = time.Time{} // nothing asked (no cloud identity yet): not spaced
		return
	}
	if err != nil {
		a.log.Warn("enrolment verifier refresh failed", "err", err)
		return
	}
	if err := a.SetVerifier(ctx, v); err != nil {
		a.log.Warn("enrolment verifier refresh failed", "err", err)
	}
}

// NewCredential returns a fresh agent credential: the prefix and 256
// random bits, base64url.
func NewCredential() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return protocol.AgentCredentialPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Enroll checks the enrolment secret and issues req.AgentUID a new
// credential, replacing (revoking) any it had. The request's fields other
// than the secret must have been validated. It returns ErrBadSecret or
// ErrNoVerifier for refusals.
func (a *Authority) Enroll(ctx context.Context, req protocol.AgentEnrollRequest) (string, error) {
	ok, err := a.secretMatches(req.EnrolmentSecret)
	if (!ok || err != nil) && a.opts.Refresh != nil {
		a.refresh(ctx)
		ok, err = a.secretMatches(req.EnrolmentSecret)
	}
	if err != nil {
		a.enrolments.WithLabelValues("unavailable").Inc()
		return "", err
	}
	if !ok {
		a.enrolments.WithLabelValues("bad_secret").Inc()
		return "", ErrBadSecret
	}
	cred := NewCredential()
	h := sha256.Sum256([]byte(cred))
	// Bump the epoch before the write so that no lookup of the old
	// credential that began earlier can cache it after the replacement.
	a.forget(req.AgentUID)
	replaced, err := a.buf.PutAgentCredential(ctx, req.AgentUID, req.ComputerName, h[:], a.now())
	if err != nil {
		return "", fmt.Errorf("agentauth: enrol %s: %w", req.AgentUID, err)
	}
	a.forget(req.AgentUID)
	a.enrolments.WithLabelValues("ok").Inc()
	if replaced {
		// Anyone with the enrolment secret may enrol any agent_uid (a
		// reinstalled agent must be able to): a replacement is visible.
		a.reenrolments.Inc()
		a.log.Warn("agent re-enrolled; its previous credential is revoked", "agent_uid", req.AgentUID, "computer_name", req.ComputerName)
	}
	select {
	case a.enrolled <- struct{}{}:
	default:
	}
	a.log.Info("agent enrolled", "agent_uid", req.AgentUID)
	return cred, nil
}

// Enrolled is signalled after an enrolment (coalesced): the gateway then
// reports new agents to the cloud.
func (a *Authority) Enrolled() <-chan struct{} { return a.enrolled }

// InvalidEnrolment counts an enrolment refused for its input (400).
func (a *Authority) InvalidEnrolment() { a.enrolments.WithLabelValues("invalid").Inc() }

// forget removes uid's cached credential and bumps the epoch.
func (a *Authority) forget(uid string) {
	a.mu.Lock()
	if h, ok := a.byUID[uid]; ok {
		delete(a.byHash, h)
		delete(a.byUID, uid)
	}
	a.epoch++
	a.mu.Unlock()
}

// Authenticate returns the agent a credential belongs to, or ErrMissing /
// ErrInvalid (counted).
func (a *Authority) Authenticate(ctx context.Context, credential string) (string, error) {
	if credential == "" {
		a.failures.WithLabelValues("missing").Inc()
		return "", ErrMissing
	}
	if !strings.HasPrefix(credential, protocol.AgentCredentialPrefix) || len(credential) > 128 {
		a.failures.WithLabelValues("invalid").Inc()
		return "", ErrInvalid
	}
	h := sha256.Sum256([]byte(credential))
	a.mu.RLock()
	uid, ok := a.byHash[h]
	epoch := a.epoch
	a.mu.RUnlock()
	if ok {
		return uid, nil
	}
	uid, ok, err := a.buf.AgentByCredential(ctx, h[:])
	if err != nil {
		return "", fmt.Errorf("agentauth: %w", err)
	}
	if !ok {
		a.failures.WithLabelValues("invalid").Inc()
		return "", ErrInvalid
	}
	a.mu.Lock()
	// Cache only if nothing was replaced or revoked since the read: the row
	// read may be one a concurrent Revoke has just deleted.
	if a.epoch == epoch {
		if len(a.byHash) >= a.opts.CacheSize {
			for k, u := range a.byHash { // drop an arbitrary entry
				delete(a.byHash, k)
				delete(a.byUID, u)
				break
			}
		}
		if old, ok := a.byUID[uid]; ok {
			delete(a.byHash, old)
		}
		a.byHash[h] = uid
		a.byUID[uid] = h
	}
	a.mu.Unlock()
	return uid, nil
}

// WrongAgent counts a request refused because an authenticated agent acted
// as another (403).
func (a *Authority) WrongAgent() { a.failures.WithLabelValues("wrong_agent").Inc() }

// Revoke drops uid's credential (its next request gets 401) and reports
// whether it had one.
func (a *Authority) Revoke(ctx context.Context, uid string) (bool, error) {
	a.forget(uid)
	ok, err := a.buf.DeleteAgentCredential(ctx, uid)
	a.forget(uid)
	if err != nil {
		return false, fmt.Errorf("agentauth: revoke %s: %w", uid, err)
	}
	a.log.Info("agent credential revoked", "agent_uid", uid, "had_credential", ok)
	return ok, nil
}
