package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
)

const (
	apiKey = "key-0123456789abcdef"
	token  = "prov-1"
	org    = 11
)

func newCloud(t *testing.T) *fakecloud.Server {
	t.Helper()
	s, err := fakecloud.New(fakecloud.Options{APIKey: apiKey, ProvisioningToken: token, OrganizationID: org,
		GatewayID: "0199aaaa-0000-7000-8000-000000000001"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testConfig(t *testing.T, dir, serverURL string, env map[string]string) *config.Config {
	t.Helper()
	base := map[string]string{
		"STAFF_GATEWAY_SERVER_URL":                      serverURL,
		"STAFF_GATEWAY_ORGANIZATION_ID":                 "11",
		"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": token,
		"STAFF_GATEWAY_GATEWAY_LISTEN":                  "127.0.0.1:0",
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":             "127.0.0.1:0",
		"STAFF_GATEWAY_BUFFER_PATH":                     filepath.Join(dir, "buffer.sqlite"),
		"STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL":           "50ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_INITIAL":          "10ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_MAX":              "100ms",
		"STAFF_GATEWAY_UPLINK_AUTH_RETRY_INTERVAL":      "100ms",
	}
	for k, v := range env {
		base[k] = v
	}
	c, err := config.Load("", func(k string) string { return base[k] })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func start(t *testing.T, cfg *config.Config) *Gateway {
	t.Helper()
	return startWith(t, cfg, Deps{Version: "test"})
}

// startWith starts a gateway with deps (the test's logger when it has
// none).
func startWith(t *testing.T, cfg *config.Config, deps Deps) *Gateway {
	t.Helper()
	if deps.Logger == nil {
		deps.Logger = logtest.New(t)
	}
	g, err := New(context.Background(), cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return g
}

func stop(t *testing.T, g *Gateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// executorOf is the gateway's executor, or nil before it has its
// credentials.
func executorOf(g *Gateway) *executor.Executor {
	if on := g.enrol.online(); on != nil {
		return on.exec
	}
	return nil
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAgentsOverHTTPAndGRPCDeliveredExactlyOnce(t *testing.T) {
	cloud := newCloud(t)
	cfg := testConfig(t, t.TempDir(), cloud.URL, nil)
	g := start(t, cfg)
	defer stop(t, g)
	base := "http://" + g.Addr()
	var mu sync.Mutex
	acked := map[string]bool{}
	observe := func(ids []string, o agentsim.Outcome) {
		if o != agentsim.Acked {
			t.Errorf("outcome %v for %d events", o, len(ids))
			return
		}
		mu.Lock()
		for _, id := range ids {
			acked[id] = true
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for _, opts := range []agentsim.Options{
		{EnrolmentSecret: fakecloud.DefaultEnrolmentSecret, GatewayURL: base, Agents: 3, BatchSize: 40, MaxEvents: 1500, ScreenshotEvery: 5, ScreenshotBytes: 2048, Observe: observe},
		{EnrolmentSecret: fakecloud.DefaultEnrolmentSecret, Transport: "grpc", GRPCAddr: g.GRPCAddr(), Agents: 3, BatchSize: 40, MaxEvents: 1500, Observe: observe},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := agentsim.Run(context.Background(), opts)
			if err != nil || res.Acked == 0 || res.Rejected != 0 {
				t.Errorf("%s: %v %s", opts.Transport, err, res)
			}
		}()
	}
	wg.Wait()
	waitFor(t, "delivery", func() bool {
		got := cloud.Deliveries()
		mu.Lock()
		defer mu.Unlock()
		for id := range acked {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	got := cloud.Deliveries()
	for id := range acked {
		if got[id] != 1 {
			t.Fatalf("event %s delivered %d times", id, got[id])
		}
	}
	if len(got) != len(acked) {
		t.Fatalf("%d delivered, %d acked", len(got), len(acked))
	}
	var d struct {
		Status       string `json:"status"`
		Provisioning string `json:"provisioning"`
		GatewayID    string `json:"gateway_id"`
		Buffer       struct {
			Level  string                               `json:"level"`
			Tables map[string]map[string]map[string]any `json:"tables"`
		} `json:"buffer"`
		Uplink struct {
			UploadedEvents int64 `json:"uploaded_events"`
		} `json:"uplink"`
		Agents struct {
			Connected int `json:"connected"`
		} `json:"agents"`
	}
	if code := getJSON(t, base+"/health/details", &d); code != 200 {
		t.Fatalf("details: %d", code)
	}
	if d.Provisioning != "ok" || d.GatewayID == "" || d.Agents.Connected != 6 || d.Buffer.Level != "normal" ||
		d.Uplink.UploadedEvents == 0 || d.Buffer.Tables["agent_data_buffer"]["screenshot"] == nil {
		t.Fatalf("details %+v", d)
	}
	if code := getJSON(t, base+"/health/ready", nil); code != 200 {
		t.Fatalf("ready: %d", code)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"gateway_events_accepted_total", "gateway_buffer_usage_ratio", "gateway_uplink_batches_total",
		"gateway_uplink_bytes_total", "gateway_uplink_latency_seconds", "gateway_backpressure_state", "gateway_connected_agents",
		"gateway_collector_request_seconds", "gateway_buffer_oldest_unsent_age_seconds"} {
		if !strings.Contains(string(body), name) {
			t.Errorf("metrics lack %s", name)
		}
	}
}

func TestProvisioningStoresKeyAndReusesIt(t *testing.T) {
	cloud := newCloud(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir, cloud.URL, nil)
	g := start(t, cfg)
	waitFor(t, "provisioning", func() bool { _, s := g.identity(); return s == "ok" })
	stop(t, g)
	keyFile := filepath.Join(dir, enroll.FileName)
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v mode %v", err, fi)
	}
	creds, err := enroll.Load(keyFile)
	if err != nil || creds.APIKey != apiKey || creds.OrganizationID != org {
		t.Fatalf("creds %+v %v", creds, err)
	}
	// The token is single-use: a second provisioning would fail, so the
	// restart must reuse the stored key.
	g = start(t, cfg)
	waitFor(t, "restart", func() bool { _, s := g.identity(); return s == "ok" })
	stop(t, g)
	if n := cloud.Stats().Provisions; n != 1 {
		t.Fatalf("%d provisionings", n)
	}
}

func TestBadProvisioningTokenIsReportedNotFatal(t *testing.T) {
	cloud := newCloud(t)
	cfg := testConfig(t, t.TempDir(), cloud.URL, map[string]string{"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": "wrong"})
	g := start(t, cfg)
	defer stop(t, g)
	waitFor(t, "refusal", func() bool { _, s := g.identity(); return strings.Contains(s, "401") })
	var d map[string]any
	getJSON(t, "http://"+g.Addr()+"/health/details", &d)
	if !strings.HasPrefix(d["provisioning"].(string), "pending") {
		t.Fatalf("provisioning %v", d["provisioning"])
	}
}

func TestStartFailsWithoutCredentials(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), "http://127.0.0.1:1", map[string]string{"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": ""})
	cfg.Organization.ProvisioningToken = ""
	_, err := New(context.Background(), cfg, Deps{Logger: logtest.New(t), Version: "test"})
	if err == nil || !strings.Contains(err.Error(), "organization.provisioning_token") {
		t.Fatalf("got %v", err)
	}
}

func TestTestConnectionVerdicts(t *testing.T) {
	cloud := newCloud(t)
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(t, dir, cloud.URL, nil)
	verdict, err := TestConnection(ctx, cfg)
	if err != nil || !strings.Contains(verdict, "not provisioned yet") {
		t.Fatalf("before provisioning: %q %v", verdict, err)
	}
	if err := enroll.Save(KeyFilePath(cfg), &enroll.Credentials{APIKey: apiKey, GatewayID: "g"}); err != nil {
		t.Fatal(err)
	}
	verdict, err = TestConnection(ctx, cfg)
	if err != nil || !strings.HasPrefix(verdict, "OK: connected") {
		t.Fatalf("with key: %q %v", verdict, err)
	}
	cloud.SetAPIKey("rotated")
	verdict, err = TestConnection(ctx, cfg)
	if err == nil || !strings.Contains(verdict, "rejected this gateway's API key") {
		t.Fatalf("bad key: %q %v", verdict, err)
	}
	cloud.Close()
	verdict, err = TestConnection(ctx, cfg)
	if err == nil || !strings.HasPrefix(verdict, "FAIL: cannot reach") {
		t.Fatalf("down: %q %v", verdict, err)
	}
}
