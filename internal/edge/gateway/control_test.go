package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/edge/health"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

func TestSocketURL(t *testing.T) {
	tests := []struct{ url, control, want string }{
		{"https://api.example.com", "", "wss://api.example.com/v2/gateway/socket"},
		{"https://api.example.com/", "", "wss://api.example.com/v2/gateway/socket"},
		{"http://127.0.0.1:3001", "", "ws://127.0.0.1:3001/v2/gateway/socket"},
		{"https://host/prefix", "", "wss://host/prefix/v2/gateway/socket"},
		{"https://api.example.com", "wss://ctl.example.com/v2/gateway/socket", "wss://ctl.example.com/v2/gateway/socket"},
	}
	for _, tt := range tests {
		cfg := &config.Config{Server: config.Server{URL: tt.url, ControlURL: tt.control}}
		if got := SocketURL(cfg); got != tt.want {
			t.Errorf("SocketURL(%q, %q) = %q, want %q", tt.url, tt.control, got, tt.want)
		}
	}
}

// TestControlPlaneWiring: after provisioning, the extra-handler hook gets
// the keyring over the key file; the heartbeat is built from real state;
// /health/details shows the control state; agents get 404 for the policy
// until one is applied; Stop ends an agent's long-poll at once.
func TestControlPlaneWiring(t *testing.T) {
	cloud := newCloud(t)
	cfg := testConfig(t, t.TempDir(), cloud.URL, map[string]string{"STAFF_GATEWAY_CONTROL_BACKOFF_INITIAL": "50ms", "STAFF_GATEWAY_CONTROL_BACKOFF_MAX": "200ms"})
	hooked := make(chan *enroll.Keyring, 1)
	g := startWith(t, cfg, Deps{Version: "test-1.2.3", ExtraHandlers: func(k *enroll.Keyring, client *http.Client) map[string]executor.Handler {
		if client == nil {
			t.Error("no HTTP client for extra handlers")
		}
		hooked <- k
		return map[string]executor.Handler{"rotate_api_key": func(context.Context, protocol.Command) (json.RawMessage, error) { return nil, nil }}
	}})
	stopped := false
	defer func() {
		if !stopped {
			stop(t, g)
		}
	}()
	base := "http://" + g.Addr()

	var k *enroll.Keyring
	select {
	case k = <-hooked:
	case <-time.After(20 * time.Second):
		t.Fatal("extra handlers never built")
	}
	if k.APIKey() != apiKey {
		t.Fatalf("keyring key %q, want the provisioned one", k.APIKey())
	}
	// The enrolment verifier first: fetched with the provisioned key, which
	// the fake cloud accepts (the rotated one below it does not); replacing
	// the key before that first fetch left the gateway without a verifier.
	waitFor(t, "the enrolment verifier", g.auth.HasVerifier)
	// The keyring persists to the key file the gateway provisioned into.
	if err := k.Replace("rotated-key-0123456789"); err != nil {
		t.Fatal(err)
	}
	if c, err := enroll.Load(KeyFilePath(cfg)); err != nil || c == nil || c.APIKey != "rotated-key-0123456789" {
		t.Fatalf("key file after Replace: %+v %v", c, err)
	}
	if g.apiKey() != "rotated-key-0123456789" {
		t.Fatal("the gateway's clients do not read the rotated key")
	}

	// Real state in the heartbeat.
	body := `{"agent_uid":"a1","computer_name":"PC-1","events":[{"type":"user_session","user_sid":"S-1","datetime":"` +
		time.Now().UTC().Format(time.RFC3339) + `","session_type":"login"}]}`
	cred := enrolAgent(t, g, "a1")
	resp := postAs(t, base+protocol.PathAgentEvents, cred, body)
	resp.Body.Close()
	hb := g.heartbeat()
	if hb.ConnectedAgents != 1 || hb.Versions["gateway"] != "test-1.2.3" || hb.DiskPercent <= 0 || hb.DiskPercent > 100 ||
		hb.MemoryPercent <= 0 || hb.MemoryPercent > 100 || hb.CPUPercent < 0 || hb.CPUPercent > 100 || hb.QueueDepth < 0 || hb.QueueDepth > 1 {
		t.Fatalf("heartbeat %+v", hb)
	}
	if _, ok := hb.Versions["policy"]; ok {
		t.Fatalf("a policy version before any policy: %+v", hb.Versions)
	}

	// The test cloud serves no control socket: the control state says so.
	var d health.Details
	getJSON(t, base+"/health/details", &d)
	if d.Control == nil || d.Control.Mode == "websocket" || d.Control.PolicyVersion != "" {
		t.Fatalf("control %+v", d.Control)
	}
	if code, _ := getAs(t, base+protocol.PathAgentPolicy, cred); code != http.StatusNotFound {
		t.Fatalf("policy before any: %d, want 404", code)
	}
	mresp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`gateway_control_mode{mode="websocket"} 0`, "gateway_control_commands_total 0", "gateway_agent_commands_pending 0"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A long-poll in flight does not hold up Stop.
	polled := make(chan error, 1)
	go func() {
		_, err := getAs(t, base+"/v1/agents/a1/commands?wait=60s", cred)
		polled <- err
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	stop(t, g)
	stopped = true
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown took %v with a long-poll in flight", d)
	}
	select {
	case <-polled:
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll outlived the gateway")
	}
}
