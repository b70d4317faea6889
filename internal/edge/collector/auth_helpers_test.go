package collector

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/edge/agentauth"
	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// testSecret is the organisation enrolment secret of the collector tests;
// their gateway holds only its verifier.
const testSecret = protocol.EnrolmentSecretPrefix + "collector-tests-0123456789abcdefghijklmnopqrstuv"

// newAuthority returns an Authority over b that knows testSecret's
// verifier.
func newAuthority(tb testing.TB, b *buffer.Buffer, reg prometheus.Registerer) *agentauth.Authority {
	tb.Helper()
	a, err := agentauth.New(context.Background(), b, agentauth.Options{Registerer: reg})
	if err != nil {
		tb.Fatal(err)
	}
	if err := a.SetVerifier(context.Background(), agentauth.Verifier(testSecret)); err != nil {
		tb.Fatal(err)
	}
	return a
}

// credentials enrols agents on first use (for real, through
// Collector.Enroll) and remembers their credentials.
type credentials struct {
	c  *Collector
	mu sync.Mutex
	m  map[string]string
}

func newCredentials(c *Collector) *credentials { return &credentials{c: c, m: map[string]string{}} }

// of returns uid's credential, enrolling it first if needed; "" when uid
// cannot enrol (an invalid uid).
func (cr *credentials) of(tb testing.TB, uid string) string {
	tb.Helper()
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if tok, ok := cr.m[uid]; ok {
		return tok
	}
	resp, err := cr.c.Enroll(context.Background(), netip.MustParseAddr("127.0.0.1"), protocol.AgentEnrollRequest{EnrolmentSecret: testSecret, AgentUID: uid, ComputerName: "PC-" + uid})
	if err != nil {
		return ""
	}
	cr.m[uid] = resp.Credential
	return resp.Credential
}

// bearer is the Authorization value for uid.
func (cr *credentials) bearer(tb testing.TB, uid string) string { return "Bearer " + cr.of(tb, uid) }

// agentOfPath returns the agent a collector path names
// (/v1/agents/{uid}/commands…), or "agent-1".
func agentOfPath(path string) string {
	if rest, ok := strings.CutPrefix(path, "/v1/agents/"); ok {
		if uid, _, ok := strings.Cut(rest, "/"); ok {
			return uid
		}
	}
	return "agent-1"
}

// bearerCreds puts an agent credential in every gRPC call's metadata.
type bearerCreds string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{protocol.GRPCAuthorizationKey: "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// tests run without TLS.
func (bearerCreds) RequireTransportSecurity() bool { return false }

// servers maps a test server's URL to its credentials, for do.
var servers sync.Map // string → *credentials

// authorize sets req's Authorization (unless hdr set one; "" there means
// none) to the credential of the agent its path names.
func authorize(tb testing.TB, req *http.Request, hdr map[string]string) {
	if _, set := hdr[protocol.HeaderAuthorization]; set {
		return
	}
	v, ok := servers.Load("http://" + req.URL.Host)
	if !ok {
		return
	}
	cr := v.(*credentials)
	uid := agentOfPath(req.URL.Path)
	tok := cr.of(tb, uid)
	if tok == "" {
		tok = cr.of(tb, "agent-1")
	}
	req.Header.Set(protocol.HeaderAuthorization, "Bearer "+tok)
}

// throttleAttempt is the limiter's view of an enrolment with secret from
// addr (as Collector.Enroll builds it).
func throttleAttempt(secret, addr string) throttle.Attempt {
	h := sha256.Sum256([]byte(secret))
	return throttle.Attempt{Kind: KindEnrolmentSecret, Source: netip.MustParseAddr(addr), Prefix: secretPrefix(secret), Credential: h[:]}
}

// gauge reads the value of a metric without labels (counter or gauge).
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
