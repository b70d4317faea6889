package consolebrowser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	benchstack "github.com/staffcontrol/staffcontrol/internal/bench/stack"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/vendors"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/hiksim"
)

// The live stack: the browser stack plus the parts that make the
// console's live pages move — the Agent API (started by
// internal/bench/stack, as `staffctl up` starts it, over the same
// database), Acme's two gateways (the seeded ACME-GW-1 and ACME-GW-2)
// running in this process and connected to it over their control
// channels, and a simulated Hikvision terminal (hiksim) attached to
// ACME-GW-1 through the Dashboard API's own device route.

// adminEmail is the live stack's organisation administrator (who may
// release and distribute policies and add devices).
const adminEmail = "admin@acme.test"

// liveStack is a stack with the live parts running.
type liveStack struct {
	*stack
	// cloud is the Agent API.
	cloud *benchstack.Stack
	// gateways are Acme's running gateways, by serial.
	gateways map[string]*gateway.Gateway
	// hik is the simulated terminal and device its devices row.
	hik    *hiksim.Sim
	device int64
}

// liveTimeout bounds each wait for the live parts (a provisioning, a
// device coming online) on this shared, loaded machine.
const liveTimeout = 90 * time.Second

// startLiveStack starts a browser stack and its live parts for t.
func startLiveStack(t *testing.T) *liveStack {
	t.Helper()
	chromium(t)
	log := logtest.New(t)
	s := &liveStack{stack: newStack(t, log), gateways: map[string]*gateway.Gateway{}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*liveTimeout)
	defer cancel()

	// The Agent API with short control timings, so that commands and
	// distribution stages move within a second.
	cloud, err := benchstack.Start(ctx, benchstack.Options{DatabaseURL: s.database.AdminURL, IngestURL: s.database.IngestURL,
		ContextKey: pg.ContextKey(), Replicas: 1, PoolSize: 8, Logger: log,
		Agent: agentapi.Config{AdvanceInterval: 200 * time.Millisecond,
			Queue:   commandqueue.Options{AckTimeout: 10 * time.Second, ExecTimeout: 30 * time.Second, Backoff: 200 * time.Millisecond},
			Control: control.Options{SweepInterval: 200 * time.Millisecond}}})
	if err != nil {
		t.Fatalf("start the Agent API: %v", err)
	}
	t.Cleanup(func() { cloud.Close(context.Background()) })
	s.cloud = cloud

	acc := accounts.New(cloud.Admin(), time.Now)
	if _, err := acc.CreateUser(ctx, benchstack.Actor(), accounts.NewUser{OrganizationID: s.acme, Email: adminEmail, Role: "ORG_ADMIN",
		Password: password}); err != nil {
		t.Fatalf("create user %s: %v", adminEmail, err)
	}
	gw2, err := cloud.RegisterGateway(ctx, s.acme, "ACME-GW-2")
	if err != nil {
		t.Fatal(err)
	}
	for _, reg := range []benchstack.Registration{
		{OrganizationID: s.acme, Serial: s.gw1.Serial, ID: s.gw1.GatewayID.String(), Token: s.gw1.ProvisioningToken}, gw2,
	} {
		s.startGateway(ctx, log, reg)
	}
	s.waitGateways(ctx)

	// The simulated terminal, added as an administrator adds one: through
	// the API, which sends ACME-GW-1 its device list.
	const hikPassword = "Console-Door-1"
	s.hik = hiksim.New(hiksim.Options{Addr: "127.0.0.1:0", Password: hikPassword, Serial: "DS-K1T671M-CONSOLE1",
		Location: time.UTC, HeartbeatInterval: time.Second})
	if err := s.hik.Start(); err != nil {
		t.Fatalf("start the Hikvision simulator: %v", err)
	}
	t.Cleanup(func() { _ = s.hik.Close() })
	host, portS, err := net.SplitHostPort(s.hik.Addr())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portS)
	token := s.apiToken(adminEmail)
	var dev struct {
		ID int64 `json:"id"`
	}
	s.apiJSON(token, http.MethodPost, "/api/v2/devices", map[string]any{"name": "Front door", "adapter_type": "hikvision",
		"gateway_id": s.gw1.GatewayID.String(), "host": host, "port": port,
		"config": map[string]any{"username": "admin", "password": hikPassword, "timeout_ms": 3000, "stream_idle_seconds": 5,
			"doors": []int{1, 2}, "time_zone": "UTC"}}, &dev)
	s.device = dev.ID
	s.waitFor(ctx, "the simulated terminal online", func() bool {
		var d struct {
			Status string `json:"status"`
		}
		s.apiJSON(token, http.MethodGet, fmt.Sprintf("/api/v2/devices/%d", s.device), nil, &d)
		return d.Status == "online"
	})
	return s
}

// startGateway runs a gateway provisioned with reg: internal/bench/stack's
// starter (as `staffctl up` runs its gateway), with the shipped device
// adapters and short timings; stopped when the test ends.
func (s *liveStack) startGateway(ctx context.Context, log *slog.Logger, reg benchstack.Registration) {
	s.t.Helper()
	env := s.cloud.GatewayEnv(reg, s.t.TempDir(), "127.0.0.1:0")
	for k, v := range map[string]string{
		"STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL":   "100ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_INITIAL":  "20ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_MAX":      "200ms",
		"STAFF_GATEWAY_CONTROL_BACKOFF_INITIAL": "100ms",
		"STAFF_GATEWAY_CONTROL_BACKOFF_MAX":     "1s",
		"STAFF_GATEWAY_DEVICE_CALL_TIMEOUT":     "3s",
		"STAFF_GATEWAY_DEVICE_BACKOFF_INITIAL":  "100ms",
		"STAFF_GATEWAY_DEVICE_BACKOFF_MAX":      "1s",
		"STAFF_GATEWAY_DEVICE_COMMAND_TIMEOUT":  "5s",
	} {
		env[k] = v
	}
	gl := log.With("gateway", reg.Serial)
	g, err := benchstack.StartGateway(ctx, env, gateway.Deps{Logger: gl, Version: "consolebrowser", DeviceFactories: vendors.Factories(gl)})
	if err != nil {
		s.t.Fatalf("start gateway %s: %v", reg.Serial, err)
	}
	s.t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := g.Stop(sctx); err != nil {
			s.t.Errorf("stop gateway %s: %v", reg.Serial, err)
		}
	})
	s.gateways[reg.Serial] = g
}

// waitGateways waits until every Acme gateway is online in the cloud.
func (s *liveStack) waitGateways(ctx context.Context) {
	s.t.Helper()
	s.waitFor(ctx, "Acme's gateways online", func() bool {
		var n int
		if err := s.admin.QueryRow(ctx, `SELECT count(*) FROM gateway_instances WHERE organization_id = $1 AND status = 'online'`,
			s.acme).Scan(&n); err != nil {
			s.t.Fatal(err)
		}
		return n == len(s.gateways)
	})
}

// waitFor polls ok every 200 ms until it holds (liveTimeout at most).
func (s *liveStack) waitFor(ctx context.Context, what string, ok func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(liveTimeout)
	for !ok() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.t.Fatalf("waiting for %s: not within %s", what, liveTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// apiToken signs email in through the API (POST /api/auth/login) and
// returns the access token.
func (s *stack) apiToken(email string) string {
	s.t.Helper()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	s.apiJSON("", http.MethodPost, "/api/auth/login", map[string]string{"email": email, "password": password}, &out)
	return out.AccessToken
}

// api calls the Dashboard API with the bearer token (none if empty) and
// returns the answer's status, content type and body.
func (s *stack) api(token, method, path string, body any) (int, string, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// apiJSON calls the API and decodes its JSON answer into out (nil: not
// decoded), failing the test on an error status.
func (s *stack) apiJSON(token, method, path string, body, out any) {
	s.t.Helper()
	status, _, b := s.api(token, method, path, body)
	if status >= 300 {
		s.t.Fatalf("%s %s: %d %s", method, path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}
