package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/edge/agentauth"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/health"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
)

// TestEnrolmentVerifierFromTheCloud: the gateway learns the verifier from
// the cloud (never the secret), enrols with the organisation's secret only,
// reports enrolled agents to the cloud, picks a rotation up at the first
// enrolment with the new secret, and keeps the verifier across a restart
// while the cloud is down.
func TestEnrolmentVerifierFromTheCloud(t *testing.T) {
	cloud := newCloud(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir, cloud.URL, nil)
	g := start(t, cfg)
	base := "http://" + g.Addr()
	cred := enrolAgentWith(t, base, fakecloud.DefaultEnrolmentSecret, "agent-a", http.StatusCreated)
	if !strings.HasPrefix(cred, protocol.AgentCredentialPrefix) {
		t.Fatalf("credential %q", cred)
	}
	waitFor(t, "the enrolment reported to the cloud", func() bool {
		a, ok := cloud.EnrolledAgents()["agent-a"]
		return ok && a.ComputerName == "PC-agent-a" && !a.EnrolledAt.IsZero()
	})

	// Rotation in the cloud: the new secret enrols at once (a wrong secret
	// refreshes the verifier), the old one no longer does.
	rotated := protocol.EnrolmentSecretPrefix + "rotated-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
	cloud.SetEnrolmentSecret(rotated)
	enrolAgentWith(t, base, rotated, "agent-c", http.StatusCreated)
	enrolAgentWith(t, base, fakecloud.DefaultEnrolmentSecret, "agent-d", http.StatusUnauthorized)
	enrolAgentWith(t, base, "sce_someone-elses-secret", "agent-b", http.StatusUnauthorized)
	waitFor(t, "agent-c reported", func() bool { _, ok := cloud.EnrolledAgents()["agent-c"]; return ok })
	for _, uid := range []string{"agent-b", "agent-d"} {
		if _, ok := cloud.EnrolledAgents()[uid]; ok {
			t.Fatalf("refused enrolment of %s was reported", uid)
		}
	}
	// Agents enrolled before the rotation keep their credentials.
	resp := postAs(t, base+protocol.PathAgentHeartbeat, cred, `{"computer_name":"PC-agent-a"}`)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("heartbeat of an agent enrolled before the rotation: %d", resp.StatusCode)
	}
	stop(t, g)

	// No secret in the gateway's files: only the verifier.
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			for _, s := range []string{rotated, fakecloud.DefaultEnrolmentSecret, cred} {
				if strings.Contains(string(b), s) {
					t.Errorf("%s holds a secret or credential in clear", p)
				}
			}
		}
		return nil
	})

	// Restarted while the cloud is down: the stored verifier still enrols.
	cloud.SetDown(true)
	g = start(t, cfg)
	defer stop(t, g)
	enrolAgentWith(t, "http://"+g.Addr(), rotated, "agent-e", http.StatusCreated)
}

// TestRevokeAgentCommand runs revoke_agent through the executor: the
// agent's requests are refused (401) from then on, nothing it sends is
// written, another agent is unaffected, and re-enrolment is possible.
func TestRevokeAgentCommand(t *testing.T) {
	cloud := newCloud(t)
	g := start(t, testConfig(t, t.TempDir(), cloud.URL, nil))
	defer stop(t, g)
	base := "http://" + g.Addr()
	victim, other := enrolAgent(t, g, "leaked"), enrolAgent(t, g, "other")
	waitFor(t, "the executor", func() bool { return executorOf(g) != nil })
	event := func(id string) string {
		return `{"computer_name":"PC","events":[{"event_id":"` + id + `","type":"user_session","user_sid":"S-1","datetime":"` + time.Now().UTC().Format(time.RFC3339) + `","session_type":"login"}]}`
	}
	send := func(cred string) (int, string) {
		id := uuid.Must(uuid.NewV7()).String()
		resp := postAs(t, base+protocol.PathAgentEvents, cred, event(id))
		if resp.StatusCode == 400 {
			b, _ := io.ReadAll(resp.Body)
			t.Logf("400: %s", b)
		}
		resp.Body.Close()
		return resp.StatusCode, id
	}
	if code, _ := send(victim); code != 200 {
		t.Fatalf("before revocation: %d", code)
	}
	payload, _ := json.Marshal(protocol.RevokeAgentPayload{AgentUID: "leaked"})
	res, err := executorOf(g).Execute(context.Background(), protocol.Command{ID: uuid.NewString(), Type: protocol.CommandRevokeAgent, Payload: payload})
	if err != nil || !strings.Contains(string(res), `"revoked":true`) {
		t.Fatalf("revoke_agent: %s %v", res, err)
	}
	code, id := send(victim)
	if ok, _ := g.buf.HasEvent(context.Background(), id); code != 401 || ok {
		t.Fatalf("after revocation: %d, buffered %v", code, ok)
	}
	if code, _ := send(other); code != 200 {
		t.Fatalf("another agent after the revocation: %d", code)
	}
	if code, _ := send(enrolAgent(t, g, "leaked")); code != 200 {
		t.Fatalf("re-enrolled after revocation: %d", code)
	}
	bad, _ := json.Marshal(map[string]string{"agent_uid": ""})
	if _, err := executorOf(g).Execute(context.Background(), protocol.Command{ID: uuid.NewString(), Type: protocol.CommandRevokeAgent, Payload: bad}); err == nil {
		t.Fatal("revoke_agent without agent_uid succeeded")
	}
}

// testTLS writes a CA and a server certificate for 127.0.0.1 and returns
// the CA, certificate and key file paths.
func testTLS(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "gateway"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "gw.pem"), filepath.Join(dir, "gw.key")
	for f, b := range map[string][]byte{
		caFile:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// TestCollectorTLS: with gateway.tls.* the collector speaks TLS on HTTP and
// gRPC; agents trusting the CA enrol and deliver over both, and a
// plain-text request does not get through.
func TestCollectorTLS(t *testing.T) {
	cloud := newCloud(t)
	caFile, certFile, keyFile := testTLS(t)
	g := start(t, testConfig(t, t.TempDir(), cloud.URL, map[string]string{
		"STAFF_GATEWAY_GATEWAY_TLS_CERT_FILE": certFile, "STAFF_GATEWAY_GATEWAY_TLS_KEY_FILE": keyFile}))
	defer stop(t, g)
	for _, opts := range []agentsim.Options{
		{GatewayURL: "https://" + g.Addr(), ScreenshotEvery: 1, ScreenshotBytes: 1024},
		{Transport: "grpc", GRPCAddr: g.GRPCAddr()},
	} {
		opts.EnrolmentSecret, opts.CAFile, opts.Agents, opts.BatchSize, opts.MaxEvents = fakecloud.DefaultEnrolmentSecret, caFile, 2, 10, 40
		res, err := agentsim.Run(context.Background(), opts)
		if err != nil || res.Enrolled != 2 || res.Acked != 40 || res.Rejected != 0 {
			t.Fatalf("%s over TLS: %v %s enrolled %d", opts.Transport, err, res, res.Enrolled)
		}
	}
	if resp, err := http.Get("http://" + g.Addr() + "/health"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP answered on the TLS listener")
	}
	// Without the CA, the gateway's certificate is not trusted.
	res, _ := agentsim.Run(context.Background(), agentsim.Options{GatewayURL: "https://" + g.Addr(), EnrolmentSecret: fakecloud.DefaultEnrolmentSecret,
		Agents: 1, MaxEvents: 10, Duration: 500 * time.Millisecond})
	if res.Enrolled != 0 || res.Acked != 0 {
		t.Fatalf("an agent without the CA got through: %s", res)
	}
}

// TestCollectorTLSBadFilesFailAtStart: bad TLS files fail at start naming
// the key.
func TestCollectorTLSBadFilesFailAtStart(t *testing.T) {
	_, certFile, keyFile := testTLS(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	for name, c := range map[string]struct {
		env  map[string]string
		want string
	}{
		"cert without key": {map[string]string{"STAFF_GATEWAY_GATEWAY_TLS_CERT_FILE": certFile}, "gateway.tls.key_file"},
		"missing cert":     {map[string]string{"STAFF_GATEWAY_GATEWAY_TLS_CERT_FILE": "/nonexistent.pem", "STAFF_GATEWAY_GATEWAY_TLS_KEY_FILE": keyFile}, "gateway.tls.cert_file"},
		"garbage cert":     {map[string]string{"STAFF_GATEWAY_GATEWAY_TLS_CERT_FILE": garbage, "STAFF_GATEWAY_GATEWAY_TLS_KEY_FILE": keyFile}, "gateway.tls.cert_file"},
		"key of another":   {map[string]string{"STAFF_GATEWAY_GATEWAY_TLS_CERT_FILE": certFile, "STAFF_GATEWAY_GATEWAY_TLS_KEY_FILE": garbage}, "gateway.tls"},
	} {
		env := map[string]string{"STAFF_GATEWAY_SERVER_URL": "http://127.0.0.1:1", "STAFF_GATEWAY_BUFFER_PATH": filepath.Join(t.TempDir(), "b.sqlite"),
			"STAFF_GATEWAY_ORGANIZATION_API_KEY": "k"}
		for k, v := range c.env {
			env[k] = v
		}
		_, err := config.Load("", func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, c.want)
		}
	}
}

// TestHealthOperatorTokenAndSeparateListener: with health.listen, health
// and metrics leave the agents' address; /health/details names agents only
// to a request with health.operator_token.
func TestHealthOperatorTokenAndSeparateListener(t *testing.T) {
	cloud := newCloud(t)
	const token = "operator-token-0123456789"
	g := start(t, testConfig(t, t.TempDir(), cloud.URL, map[string]string{
		"STAFF_GATEWAY_HEALTH_LISTEN": "127.0.0.1:0", "STAFF_GATEWAY_HEALTH_OPERATOR_TOKEN": token}))
	defer stop(t, g)
	if g.HealthAddr() == g.Addr() {
		t.Fatal("health shares the agents' address")
	}
	resp := postAs(t, "http://"+g.Addr()+protocol.PathAgentRegister, enrolAgent(t, g, "CEO-agent"), `{"computer_name":"CEO-LAPTOP"}`)
	resp.Body.Close()
	for _, p := range []string{"/metrics", "/health/details", "/health"} {
		if r, err := http.Get("http://" + g.Addr() + p); err != nil || r.StatusCode != 404 {
			t.Fatalf("%s on the agents' address: %v %v", p, r.StatusCode, err)
		}
	}
	details := func(authz string) (health.Details, string) {
		req, _ := http.NewRequest("GET", "http://"+g.HealthAddr()+"/health/details", nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		raw, _ := io.ReadAll(r.Body)
		var d health.Details
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		return d, string(raw)
	}
	for _, authz := range []string{"", "Bearer wrong-token-0123456789", "Basic " + token, "Bearer " + token[:len(token)-1]} {
		d, raw := details(authz)
		if strings.Contains(raw, "CEO") || !d.Agents.Redacted || d.Agents.Connected != 1 {
			t.Fatalf("details with %q show agent identities: %s", authz, raw)
		}
	}
	if d, raw := details("Bearer " + token); len(d.Agents.Recent) != 1 || d.Agents.Recent[0].ComputerName != "CEO-LAPTOP" || d.Agents.Redacted {
		t.Fatalf("operator's details: %s", raw)
	}
	r, err := http.Get("http://" + g.HealthAddr() + "/metrics")
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("metrics on health.listen: %v", err)
	}
	raw, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, want := range []string{`gateway_agent_enrolments_total{result="ok"} 1`, `gateway_agent_auth_failures_total{reason="missing"} 0`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

var _ = agentauth.Verifier
