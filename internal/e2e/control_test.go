package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	edgecontrol "github.com/staffcontrol/staffcontrol/internal/edge/control"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// countingTransport counts the requests an executor makes.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

type controlWorld struct {
	api     *httptest.Server
	admin   *pgx.Conn
	dash    *policy.Service
	dist    *policy.Distributor
	queue   *commandqueue.Queue
	actor   accounts.Actor
	gateway uuid.UUID
	key     string
}

func newControlWorld(t *testing.T, copts control.Options) *controlWorld {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	ing, err := postgres.Connect(ctx, db.IngestURL, 10, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ing.Close)
	stack := startAgentAPI(t, ing, service.NewRegistry(), agentapi.Config{Queue: commandqueue.Options{AckTimeout: time.Second, Backoff: 100 * time.Millisecond}, Control: copts})
	gws := stack.gws
	api := httptest.NewServer(stack.routes)
	t.Cleanup(func() { stack.stop(); api.CloseClientConnections(); api.Close() })
	dashPool, err := postgres.Connect(ctx, db.DashboardURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dashPool.Close)
	acc := accounts.New(pg.Pool(t, db.PlatformAdminURL, 2), time.Now)
	admin := accounts.Actor{Name: "e2e", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	o, err := acc.CreateOrganization(ctx, admin, "Alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := acc.RegisterGateway(ctx, admin, o.ID, "GW", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gw, key, err := gws.Provision(ctx, o.ID, "GW", r.ProvisioningToken)
	if err != nil {
		t.Fatal(err)
	}
	w := &controlWorld{api: api, gateway: gw.ID, key: key, actor: accounts.Actor{Name: "hr", Tenant: postgres.Tenant{OrganizationID: o.ID, Role: postgres.AppOrgAdmin}}}
	if w.admin, err = pgx.Connect(ctx, db.AdminURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.admin.Close(context.Background()) })
	if w.dash, err = policy.New(dashPool); err != nil {
		t.Fatal(err)
	}
	dq, _ := commandqueue.New(dashPool, commandqueue.Options{}, service.NewRegistry())
	w.queue = dq
	w.dist = policy.NewDistributor(dashPool, dq)
	return w
}

// startGateway starts the gateway's control client and executor.
func (w *controlWorld) startGateway(t *testing.T, ctx context.Context, socketURL string, fallbackAfter int) (*edgecontrol.Client, *executor.Executor, *countingTransport) {
	t.Helper()
	ct := &countingTransport{}
	ex, err := executor.Open(executor.Options{Dir: t.TempDir(), BaseURL: w.api.URL, APIKey: func() string { return w.key }, Client: &http.Client{Transport: ct}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	c := edgecontrol.New(edgecontrol.Options{SocketURL: socketURL, BaseURL: w.api.URL, APIKey: func() string { return w.key },
		Heartbeat: func() protocol.Heartbeat { return protocol.Heartbeat{ConnectedAgents: 1} }, Execute: ex.Execute,
		Config: edgecontrol.Config{BackoffInitial: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, FallbackAfter: fallbackAfter, FallbackFor: 2 * time.Second},
		Logger: logtest.New(t)})
	go c.Run(ctx)
	return c, ex, ct
}

func (w *controlWorld) release(t *testing.T, ctx context.Context, content string) (int64, string) {
	t.Helper()
	p, err := w.dash.Create(ctx, w.actor, "P "+uuid.NewString()[:6], []byte(content))
	if err != nil {
		t.Fatal(err)
	}
	v, err := w.dash.Release(ctx, w.actor, p.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.dist.Distribute(ctx, w.actor, p.ID, v.Version, nil, 0); err != nil {
		t.Fatal(err)
	}
	return p.ID, v.Version
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGatewayAppliesPolicyOnceUnderRedeliveryAndResets: the gateway's
// control client and executor against the real Agent API. A released policy
// is applied; a redelivered command is acknowledged from the ledger without
// running again; a WebSocket reset mid-way loses nothing.
func TestGatewayAppliesPolicyOnceUnderRedeliveryAndResets(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newControlWorld(t, control.Options{SweepInterval: 100 * time.Millisecond})
	c, ex, fetches := w.startGateway(t, ctx, "ws"+strings.TrimPrefix(w.api.URL, "http")+protocol.PathGatewaySocket, 5)
	waitUntil(t, "connection", 10*time.Second, c.Connected)

	_, version := w.release(t, ctx, `{"screenshots":{"enabled":true}}`)
	waitUntil(t, "policy applied", 10*time.Second, func() bool { p := ex.CurrentPolicy(); return p != nil && p.Version == version })
	var cmdID string
	if err := w.admin.QueryRow(ctx, `SELECT id::text FROM gateway_commands WHERE type = 'policy_update'`).Scan(&cmdID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "command completed", 10*time.Second, func() bool {
		var s string
		_ = w.admin.QueryRow(ctx, `SELECT status FROM gateway_commands WHERE id = $1`, cmdID).Scan(&s)
		return s == "completed"
	})
	if n := fetches.n.Load(); n != 1 {
		t.Fatalf("policy fetched %d times, want 1", n)
	}
	// Redelivery of the same command (as after a lost acknowledgement).
	if _, err := w.admin.Exec(ctx, `UPDATE gateway_commands SET status = 'pending', next_attempt_at = now(), completed_at = NULL WHERE id = $1`, cmdID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "redelivered command acknowledged", 10*time.Second, func() bool {
		var s string
		var attempts int
		_ = w.admin.QueryRow(ctx, `SELECT status, attempts FROM gateway_commands WHERE id = $1`, cmdID).Scan(&s, &attempts)
		return s == "completed" && attempts == 2
	})
	if n := fetches.n.Load(); n != 1 {
		t.Fatalf("a redelivered command ran again: %d fetches", n)
	}
	// The Agent API drops every socket; commands enqueued meanwhile arrive
	// after the reconnect.
	w.api.CloseClientConnections()
	_, v2 := w.release(t, ctx, `{"screenshots":{"enabled":false}}`)
	waitUntil(t, "second policy after a reset", 15*time.Second, func() bool { p := ex.CurrentPolicy(); return p != nil && p.Version == v2 })
	if ok, _ := ex.Executed(ctx, cmdID); !ok {
		t.Fatal("the ledger lost the first command")
	}
	// An unknown command type fails with a clear error.
	bad, err := w.queue.Enqueue(ctx, w.actor.Tenant, commandqueue.NewCommand{GatewayID: w.gateway, Type: protocol.CommandDeviceCommand, Payload: json.RawMessage(`{"command":"open_door"}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "device command failed", 10*time.Second, func() bool {
		var s string
		var e *string
		_ = w.admin.QueryRow(ctx, `SELECT status, error FROM gateway_commands WHERE id = $1`, bad.ID).Scan(&s, &e)
		return s == "failed" && e != nil && strings.Contains(*e, "not supported")
	})
}

// TestGatewayFallsBackToRESTPolling: a socket URL that cannot upgrade makes
// the client poll over REST; commands still arrive and are acknowledged.
func TestGatewayFallsBackToRESTPolling(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newControlWorld(t, control.Options{})
	c, ex, _ := w.startGateway(t, ctx, "ws"+strings.TrimPrefix(w.api.URL, "http")+"/no-such-socket", 2)
	_, version := w.release(t, ctx, `{"activity":{"track_sites":true}}`)
	waitUntil(t, "policy applied over REST", 20*time.Second, func() bool { p := ex.CurrentPolicy(); return p != nil && p.Version == version })
	if c.Connected() {
		t.Fatal("a WebSocket connected to a path that does not exist")
	}
	waitUntil(t, "completed over REST", 10*time.Second, func() bool {
		var s string
		_ = w.admin.QueryRow(ctx, `SELECT status FROM gateway_commands WHERE type = 'policy_update'`).Scan(&s)
		return s == "completed"
	})
}

func controlOptionsDefault() control.Options { return control.Options{} }
