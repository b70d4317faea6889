package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestGatewayRotatesItsKeyWhileAgentsSend runs the real gateway wiring
// (provisioned by token, so its key lives in the key file) against the
// real Agent API while agents send: a rotate_api_key command completes,
// the key file holds the new key (mode 0600), the old key is refused, the
// control socket and the uplink carry on with the new key, and every event
// acknowledged to an agent — before, during and after the rotation — is
// stored exactly once.
func TestGatewayRotatesItsKeyWhileAgentsSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newGCWorld(t, commandqueue.Options{AckTimeout: 5 * time.Second, ExecTimeout: 60 * time.Second, Backoff: 200 * time.Millisecond}, false)
	cfg, base := startGCGateway(t, w, map[string]string{
		"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": w.token,
		"STAFF_GATEWAY_UPLINK_AUTH_RETRY_INTERVAL":      "10m", // a pause would stall the test
	})
	keyFile := gateway.KeyFilePath(cfg)
	before, err := enroll.Load(keyFile)
	if err != nil || before == nil {
		t.Fatalf("key file after provisioning: %v %v", before, err)
	}
	agents := startGCAgents(t, base, w.secret, 3)
	waitUntil(t, "events flowing", 30*time.Second, func() bool { return len(gcStored(t, w.admin)) > 50 })

	cmd, err := w.queue.Enqueue(ctx, w.actor.Tenant, commandqueue.NewCommand{GatewayID: w.gateway, Type: protocol.CommandRotateAPIKey,
		Payload: json.RawMessage(`{"overlap_seconds":600}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "rotate_api_key completed", 60*time.Second, func() bool {
		return w.command(t, cmd.ID.String()).Status == commandqueue.StatusCompleted
	})
	after, err := enroll.Load(keyFile)
	if err != nil || after == nil || after.APIKey == before.APIKey {
		t.Fatalf("key file not rotated: %v", err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	if res := w.command(t, cmd.ID.String()).Result; strings.Contains(res, after.APIKey) {
		t.Fatal("the command result holds the key")
	}
	ping := func(key string) int {
		req, _ := http.NewRequest(http.MethodGet, w.api.URL+protocol.PathGatewayPing, nil)
		req.Header.Set(protocol.HeaderAPIKey, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := ping(before.APIKey); c != http.StatusUnauthorized {
		t.Fatalf("old key answered %d, want 401", c)
	}
	if c := ping(after.APIKey); c != http.StatusOK {
		t.Fatalf("new key answered %d, want 200", c)
	}
	waitUntil(t, "control socket back on the new key", 30*time.Second, func() bool {
		d, err := gcDetails(base)
		return err == nil && d.Control != nil && d.Control.Mode == "websocket"
	})
	// Events keep flowing after the rotation, then everything drains.
	n := len(gcStored(t, w.admin))
	waitUntil(t, "events after the rotation", 30*time.Second, func() bool { return len(gcStored(t, w.admin)) > n+50 })
	agents.stop()
	agents.mu.Lock()
	acked := agents.acked
	agents.mu.Unlock()
	waitUntil(t, "acknowledged events stored", 60*time.Second, func() bool {
		got := gcStored(t, w.admin)
		for id := range acked {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	got := gcStored(t, w.admin)
	for id := range acked {
		if got[id] != 1 {
			t.Errorf("event %s stored %d times, want once", id, got[id])
		}
	}
	d, err := gcDetails(base)
	if err != nil {
		t.Fatal(err)
	}
	if d.Uplink == nil || d.Uplink.Paused != "" {
		t.Fatalf("uplink after rotation: %+v", d.Uplink)
	}
	t.Logf("rotated %s… → %s…; %d acknowledged events stored once", before.APIKey[:8], after.APIKey[:8], len(acked))
}

// startGCGateway starts an in-process gateway (the binary's wiring) against
// w's Agent API with fast test timings and the given extra settings, waits
// until its control channel is up, and shuts it down when the test ends.
func startGCGateway(t *testing.T, w *gcWorld, extra map[string]string) (*config.Config, string) {
	t.Helper()
	env := map[string]string{
		"STAFF_GATEWAY_SERVER_URL":              w.api.URL,
		"STAFF_GATEWAY_ORGANIZATION_ID":         strconv.FormatInt(w.orgID, 10),
		"STAFF_GATEWAY_GATEWAY_LISTEN":          "127.0.0.1:0",
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":     "off",
		"STAFF_GATEWAY_GATEWAY_SERIAL":          "GW-CTL",
		"STAFF_GATEWAY_BUFFER_PATH":             filepath.Join(t.TempDir(), "buffer.sqlite"),
		"STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL":   "100ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_INITIAL":  "20ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_MAX":      "200ms",
		"STAFF_GATEWAY_CONTROL_BACKOFF_INITIAL": "100ms",
		"STAFF_GATEWAY_CONTROL_BACKOFF_MAX":     "1s",
		"STAFF_GATEWAY_HEALTH_OPERATOR_TOKEN":   e2eOperatorToken,
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(context.Background(), cfg, gateway.Deps{Logger: logtest.New(t), Version: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := g.Stop(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	base := "http://" + g.Addr()
	waitUntil(t, "control channel up", 60*time.Second, func() bool {
		d, err := gcDetails(base)
		return err == nil && d.Control != nil && d.Control.Mode == "websocket"
	})
	return cfg, base
}
