package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/enrolment"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// e2eOperatorToken is health.operator_token of the e2e gateways: gcDetails
// presents it to see agent identities.
const e2eOperatorToken = "e2e-operator-token-0123456789"

// newEnrolmentSecret creates the organisation's agent enrolment secret as
// staffctl org enrolment-secret does (pool: the dashboard or owner role).
func newEnrolmentSecret(t testing.TB, pool *pgxpool.Pool, orgID int64) string {
	t.Helper()
	svc := enrolment.New(pool)
	secret, _, err := svc.Rotate(context.Background(), postgres.Tenant{OrganizationID: orgID, Role: postgres.AppAdmin}, orgID)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// enrolAt enrols uid at the gateway base with secret, waiting while the
// gateway has no verifier yet (503); it returns the final status and the
// credential (201).
func enrolAt(t testing.TB, base, secret, uid string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(protocol.AgentEnrollRequest{EnrolmentSecret: secret, AgentUID: uid, ComputerName: "E2E-PC"})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(base+protocol.PathAgentEnroll, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Errorf("enrol %s: %v", uid, err)
			return 0, ""
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var out protocol.AgentEnrollResponse
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out.Credential
	}
}

// agentCreds enrols agents on first use and remembers their credentials.
type agentCreds struct {
	base, secret string
	mu           sync.Mutex
	m            map[string]string // uid → credential ("" when uid cannot enrol)
}

func newAgentCreds(base, secret string) *agentCreds {
	return &agentCreds{base: base, secret: secret, m: map[string]string{}}
}

// of returns uid's credential, or fallback's when uid cannot enrol (an
// invalid uid: the gateway then refuses the request for its text).
//
// Enrolments are serialised: two concurrent enrolments of one uid would
// each revoke the other's credential, and the one kept could be the
// revoked one.
func (c *agentCreds) of(t testing.TB, uid, fallback string) string {
	c.mu.Lock()
	cred, ok := c.m[uid]
	if !ok {
		code, got := enrolAt(t, c.base, c.secret, uid)
		if code != http.StatusCreated {
			got = ""
		}
		c.m[uid] = got
		cred = got
	}
	c.mu.Unlock()
	if cred == "" && uid != fallback {
		return c.of(t, fallback, fallback)
	}
	return cred
}
