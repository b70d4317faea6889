package control_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// world is a database with two organisations, each with a provisioned
// gateway, and a way to start Agent API replicas on it.
type world struct {
	t       testing.TB
	db      *pgtest.Database
	ingest  *pgxpool.Pool
	admin   *pgx.Conn
	enqueue *commandqueue.Queue // as the dashboard role
	a, b    gw
}

type gw struct {
	org    int64
	id     uuid.UUID
	key    string
	tenant postgres.Tenant
}

func newWorld(t testing.TB) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{t: t, db: pg.NewDatabase(t)}
	var err error
	if w.ingest, err = postgres.Connect(ctx, w.db.IngestURL, 20, pg.ContextKey()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.ingest.Close)
	if w.admin, err = pgx.Connect(ctx, w.db.AdminURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.admin.Close(context.Background()) })
	dash, err := postgres.Connect(ctx, w.db.DashboardURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dash.Close)
	if w.enqueue, err = commandqueue.New(dash, commandqueue.Options{}, service.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	acc := accounts.New(pg.Pool(t, w.db.PlatformAdminURL, 2), time.Now)
	actor := accounts.Actor{Name: "test", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	gws := auth.NewGateways(w.ingest)
	for _, g := range []*gw{&w.a, &w.b} {
		o, err := acc.CreateOrganization(ctx, actor, "Org "+uuid.NewString()[:8], "")
		if err != nil {
			t.Fatal(err)
		}
		reg, err := acc.RegisterGateway(ctx, actor, o.ID, "GW", "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		got, key, err := gws.Provision(ctx, o.ID, "GW", reg.ProvisioningToken)
		if err != nil {
			t.Fatal(err)
		}
		*g = gw{org: o.ID, id: got.ID, key: key, tenant: postgres.Tenant{OrganizationID: o.ID, Role: postgres.AppOrgAdmin}}
	}
	return w
}

// replica is one Agent API instance.
type replica struct {
	srv  *httptest.Server
	stop func()
}

func (w *world) replica(opts control.Options, qopts commandqueue.Options) *replica {
	w.t.Helper()
	api := agentapitest.Start(w.t, w.ingest, agentapitest.Options{Config: agentapi.Config{Control: opts, Queue: qopts}})
	time.Sleep(100 * time.Millisecond) // LISTEN in place
	// dial and the REST helpers only need the URL.
	return &replica{srv: &httptest.Server{URL: api.URL}, stop: api.Stop}
}

// client is a gateway's control socket.
type client struct {
	t    *testing.T
	ws   *websocket.Conn
	msgs chan protocol.Envelope
	err  chan error
}

func (r *replica) dial(t *testing.T, key string) (*client, *http.Response, error) {
	t.Helper()
	url := "ws" + strings.TrimPrefix(r.srv.URL, "http") + protocol.PathGatewaySocket
	ws, resp, err := websocket.DefaultDialer.Dial(url, http.Header{protocol.HeaderAPIKey: {key}})
	if err != nil {
		return nil, resp, err
	}
	c := &client{t: t, ws: ws, msgs: make(chan protocol.Envelope, 1000), err: make(chan error, 1)}
	go func() {
		for {
			var env protocol.Envelope
			if err := ws.ReadJSON(&env); err != nil {
				c.err <- err
				close(c.msgs)
				return
			}
			c.msgs <- env
		}
	}()
	t.Cleanup(func() { ws.Close() })
	return c, resp, nil
}

// next returns the next message of type typ within d.
func (c *client) next(typ string, d time.Duration) (protocol.Envelope, bool) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case env, ok := <-c.msgs:
			if !ok {
				return protocol.Envelope{}, false
			}
			if env.Type == typ {
				return env, true
			}
		case <-deadline:
			return protocol.Envelope{}, false
		}
	}
}

func (c *client) command(d time.Duration) (protocol.Command, bool) {
	env, ok := c.next(protocol.MsgCommand, d)
	var cmd protocol.Command
	if ok {
		_ = json.Unmarshal(env.Data, &cmd)
	}
	return cmd, ok
}

func (c *client) send(typ string, v any) {
	c.t.Helper()
	data, _ := json.Marshal(v)
	if err := c.ws.WriteJSON(protocol.Envelope{V: protocol.ControlVersion, Type: typ, Data: data}); err != nil {
		c.t.Fatal(err)
	}
}

func (w *world) status(id string) string {
	w.t.Helper()
	var s string
	if err := w.admin.QueryRow(context.Background(), `SELECT status FROM gateway_commands WHERE id = $1`, id).Scan(&s); err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *world) enq(g gw, typ string, prio int) commandqueue.Command {
	w.t.Helper()
	c, err := w.enqueue.Enqueue(context.Background(), g.tenant, commandqueue.NewCommand{GatewayID: g.id, Type: typ, Priority: prio, Payload: json.RawMessage(`{"n":1}`)})
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func TestCommandReachesTheSocketAtOnceAndIsAcknowledgedInTwoPhases(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.replica(control.Options{}, commandqueue.Options{})
	c, _, err := r.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	if env, ok := c.next(protocol.MsgWelcome, 5*time.Second); !ok || !strings.Contains(string(env.Data), w.a.id.String()) {
		t.Fatalf("no welcome: %+v", env)
	}
	start := time.Now()
	cmd := w.enq(w.a, protocol.CommandRestartAgent, 0)
	got, ok := c.command(5 * time.Second)
	if !ok || got.ID != cmd.ID.String() || got.Attempt != 1 {
		t.Fatalf("command not delivered: %+v", got)
	}
	t.Logf("enqueue → socket: %v", time.Since(start))
	c.send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: got.ID, Phase: protocol.AckReceived})
	c.send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: got.ID, Phase: protocol.AckCompleted, Result: json.RawMessage(`{"ok":true}`)})
	deadline := time.Now().Add(5 * time.Second)
	for w.status(got.ID) != commandqueue.StatusCompleted && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s := w.status(got.ID); s != commandqueue.StatusCompleted {
		t.Fatalf("status %s, want completed", s)
	}
	// Unknown and malformed messages are answered with an error, not a hang-up.
	c.send("teleport", struct{}{})
	if _, ok := c.next(protocol.MsgError, 5*time.Second); !ok {
		t.Fatal("no error for an unknown message type")
	}
}

func TestPendingCommandsAreDeliveredOnConnectInPriorityOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	low, high, mid := w.enq(w.a, protocol.CommandRestartAgent, 0), w.enq(w.a, protocol.CommandPolicyUpdate, 9), w.enq(w.a, protocol.CommandRestartAgent, 5)
	r := w.replica(control.Options{}, commandqueue.Options{})
	c, _, err := r.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []commandqueue.Command{high, mid, low} {
		got, ok := c.command(5 * time.Second)
		if !ok || got.ID != want.ID.String() {
			t.Fatalf("got %+v, want %s", got, want.ID)
		}
	}
}

func TestAnotherOrganisationsGatewayNeverReceivesACommand(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.replica(control.Options{}, commandqueue.Options{})
	ca, _, err := r.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	cb, _, err := r.dial(t, w.b.key)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		w.enq(w.a, protocol.CommandRestartAgent, 0)
	}
	for i := 0; i < 5; i++ {
		if _, ok := ca.command(5 * time.Second); !ok {
			t.Fatalf("gateway A received %d of 5", i)
		}
	}
	if cmd, ok := cb.command(time.Second); ok {
		t.Fatalf("gateway B received %+v", cmd)
	}
}

func TestSecondConnectionReplacesTheFirst(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.replica(control.Options{}, commandqueue.Options{})
	first, _, err := r.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	first.next(protocol.MsgWelcome, 20*time.Second)
	second, _, err := r.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-first.err:
		if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
			t.Fatalf("first socket ended with %v, want a policy-violation close", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the first socket stayed open")
	}
	cmd := w.enq(w.a, protocol.CommandRestartAgent, 0)
	if got, ok := second.command(20 * time.Second); !ok || got.ID != cmd.ID.String() {
		t.Fatal("the second socket did not receive the command")
	}
}

func TestRevokedKeysSocketClosesWithinOneSecond(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.replica(control.Options{}, commandqueue.Options{})
	c, _, err := r.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	c.next(protocol.MsgWelcome, 5*time.Second)
	start := time.Now()
	if _, err := w.admin.Exec(context.Background(), `UPDATE gateway_instances SET revoked_at = now(), status = 'revoked' WHERE id = $1`, w.a.id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.err:
		if d := time.Since(start); d > time.Second {
			t.Fatalf("closed after %v, want within 1 s", d)
		}
	case <-time.After(time.Second):
		t.Fatal("socket still open 1 s after revocation")
	}
	if _, resp, err := r.dial(t, w.a.key); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reconnect with a revoked key: %v", err)
	}
}

func TestTwoReplicasShareOneQueue(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r1 := w.replica(control.Options{}, commandqueue.Options{})
	r2 := w.replica(control.Options{}, commandqueue.Options{})
	ca, _, err := r1.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	cb, _, err := r2.dial(t, w.b.key)
	if err != nil {
		t.Fatal(err)
	}
	ca.next(protocol.MsgWelcome, 5*time.Second)
	cb.next(protocol.MsgWelcome, 5*time.Second)
	a, b := w.enq(w.a, protocol.CommandRestartAgent, 0), w.enq(w.b, protocol.CommandRestartAgent, 0)
	if got, ok := ca.command(5 * time.Second); !ok || got.ID != a.ID.String() {
		t.Fatal("replica 1's gateway did not get its command")
	}
	if got, ok := cb.command(5 * time.Second); !ok || got.ID != b.ID.String() {
		t.Fatal("replica 2's gateway did not get its command")
	}
}

func TestHeartbeatsAndOfflineAfterMissedOnes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.replica(control.Options{HeartbeatInterval: 200 * time.Millisecond, SweepInterval: 100 * time.Millisecond}, commandqueue.Options{})
	c, _, err := r.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	c.send(protocol.MsgHeartbeat, protocol.Heartbeat{CPUPercent: 12.5, BufferUsage: 0.25, QueueDepth: 40, ConnectedAgents: 7, Versions: map[string]string{"gateway": "2.0.1"}})
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	var snaps int
	for time.Now().Before(deadline) {
		_ = w.admin.QueryRow(ctx, `SELECT count(*) FROM gateway_status_snapshots WHERE gateway_id = $1 AND connected_agents = 7 AND buffer_usage = 25`, w.a.id).Scan(&snaps)
		if snaps == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var status, version string
	if err := w.admin.QueryRow(ctx, `SELECT status, version FROM gateway_instances WHERE id = $1`, w.a.id).Scan(&status, &version); err != nil || snaps != 1 || status != "online" || version != "2.0.1" {
		t.Fatalf("after a heartbeat: %d snapshots, %s, %s, %v", snaps, status, version, err)
	}
	c.ws.Close()
	// The offline sweep reads the server's clock and waits at least 30 s
	// whatever the heartbeat interval: make the last heartbeat old instead.
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := w.admin.Exec(ctx, `UPDATE gateway_instances SET last_seen_at = now() - interval '31 seconds' WHERE id = $1`, w.a.id); err != nil {
			t.Fatal(err)
		}
		_ = w.admin.QueryRow(ctx, `SELECT status FROM gateway_instances WHERE id = $1`, w.a.id).Scan(&status)
		if status == "offline" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status != "offline" {
		t.Fatalf("status %s after three missed heartbeats, want offline", status)
	}
}

func TestCommandsSurviveAnAgentAPIRestart(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	qopts := commandqueue.Options{AckTimeout: 300 * time.Millisecond, Backoff: 50 * time.Millisecond}
	copts := control.Options{SweepInterval: 100 * time.Millisecond}
	r1 := w.replica(copts, qopts)
	c, _, err := r1.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	cmd := w.enq(w.a, protocol.CommandPolicyUpdate, 0)
	if got, ok := c.command(5 * time.Second); !ok || got.ID != cmd.ID.String() {
		t.Fatal("first delivery missing")
	}
	// The Agent API goes away before the gateway acknowledges.
	r1.stop()
	r2 := w.replica(copts, qopts)
	c2, _, err := r2.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := c2.command(10 * time.Second)
	if !ok || got.ID != cmd.ID.String() || got.Attempt != 2 {
		t.Fatalf("redelivery after restart: %+v, %v", got, ok)
	}
	c2.send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: got.ID, Phase: protocol.AckCompleted})
	deadline := time.Now().Add(5 * time.Second)
	for w.status(got.ID) != commandqueue.StatusCompleted && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s := w.status(got.ID); s != commandqueue.StatusCompleted {
		t.Fatalf("status %s, want completed", s)
	}
	// A command that expires before any gateway connects is never sent.
	exp, err := w.enqueue.Enqueue(context.Background(), w.b.tenant, commandqueue.NewCommand{GatewayID: w.b.id, Type: protocol.CommandRestartAgent, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1300 * time.Millisecond)
	cb, _, err := r2.dial(t, w.b.key)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := cb.command(time.Second); ok {
		t.Fatalf("expired command delivered: %+v", got)
	}
	if s := w.status(exp.ID.String()); s != commandqueue.StatusExpired {
		t.Fatalf("status %s, want expired", s)
	}
}

func TestRESTFallbackLongPollAndAck(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.replica(control.Options{}, commandqueue.Options{})
	get := func(key, wait string) (int, protocol.CommandList, time.Duration) {
		req, _ := http.NewRequest(http.MethodGet, r.srv.URL+protocol.PathGatewayCommands+"?wait="+wait, nil)
		req.Header.Set(protocol.HeaderAPIKey, key)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l protocol.CommandList
		_ = json.NewDecoder(resp.Body).Decode(&l)
		return resp.StatusCode, l, time.Since(start)
	}
	done := make(chan protocol.CommandList, 1)
	go func() { _, l, _ := get(w.a.key, "10s"); done <- l }()
	time.Sleep(300 * time.Millisecond)
	cmd := w.enq(w.a, protocol.CommandRestartAgent, 0)
	select {
	case l := <-done:
		if len(l.Commands) != 1 || l.Commands[0].ID != cmd.ID.String() {
			t.Fatalf("long-poll returned %+v", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long-poll did not return on enqueue")
	}
	ack := func(key, id, body string) int {
		req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/v2/gateway/commands/"+id+"/ack", strings.NewReader(body))
		req.Header.Set(protocol.HeaderAPIKey, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ack(w.b.key, cmd.ID.String(), `{"phase":"completed"}`); code != http.StatusNotFound {
		t.Errorf("another organisation acknowledging: %d, want 404", code)
	}
	if code := ack(w.b.key, cmd.ID.String(), `{"phase":"received"}`); code != http.StatusNotFound {
		t.Errorf("another organisation's received ack: %d, want 404 (as documented)", code)
	}
	if code := ack(w.a.key, cmd.ID.String(), `{"phase":"done"}`); code != http.StatusUnprocessableEntity {
		t.Errorf("bad phase: %d, want 422", code)
	}
	if code := ack(w.a.key, "nope", `{"phase":"completed"}`); code != http.StatusBadRequest {
		t.Errorf("bad id: %d, want 400", code)
	}
	if code := ack(w.a.key, cmd.ID.String(), `{"phase":"completed","result":{"ok":true}}`); code != http.StatusNoContent {
		t.Errorf("ack: %d, want 204", code)
	}
	if s := w.status(cmd.ID.String()); s != commandqueue.StatusCompleted {
		t.Errorf("status %s, want completed", s)
	}
	if code, l, d := get(w.a.key, "300ms"); code != 200 || len(l.Commands) != 0 || d < 250*time.Millisecond {
		t.Errorf("empty long-poll: %d %+v after %v", code, l, d)
	}
	if code, _, _ := get(w.a.key, "5m"); code != http.StatusBadRequest {
		t.Errorf("wait=5m: %d, want 400", code)
	}
}

func postgresConnect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	return postgres.Connect(ctx, url, 8, pg.ContextKey())
}

func newRegistry() *prometheus.Registry { return service.NewRegistry() }

func mustQueue(t testing.TB, w *world) *commandqueue.Queue {
	t.Helper()
	q, err := commandqueue.New(w.ingest, commandqueue.Options{}, service.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestDueCommandsReachTheirSocketsWithoutANotification makes a command of
// each of two organisations due without a NOTIFY (its backoff passes by an
// UPDATE of next_attempt_at alone): the sweep's due-command check, asked
// once per organisation in its own context, wakes both sockets.
func TestDueCommandsReachTheirSocketsWithoutANotification(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.replica(control.Options{SweepInterval: 100 * time.Millisecond}, commandqueue.Options{})
	ca, _, err := r.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	cb, _, err := r.dial(t, w.b.key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids := map[uuid.UUID]string{}
	for _, g := range []gw{w.a, w.b} {
		var id string
		if err := w.admin.QueryRow(ctx, `INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, expires_at, next_attempt_at)
			VALUES ($1, $2, 'restart_agent', '{}', now() + interval '1 hour', now() + interval '1 hour') RETURNING id`,
			g.tenant.OrganizationID, g.id).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[g.id] = id
	}
	if cmd, ok := ca.command(300 * time.Millisecond); ok {
		t.Fatalf("delivered before its backoff: %+v", cmd)
	}
	if _, err := w.admin.Exec(ctx, `UPDATE gateway_commands SET next_attempt_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	for g, c := range map[uuid.UUID]*client{w.a.id: ca, w.b.id: cb} {
		if got, ok := c.command(5 * time.Second); !ok || got.ID != ids[g] {
			t.Fatalf("gateway %s: got %+v, want its due command %s", g, got, ids[g])
		}
	}
}

// TestHeartbeatDeviceStates: the device states of a heartbeat land in the
// devices rows of that gateway only (a row of another gateway or
// organisation named by id is left alone), the serial only where the row
// has none; a heartbeat with an unknown status is refused naming it.
func TestHeartbeatDeviceStates(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	device := func(g gw, name, serial string) int64 {
		t.Helper()
		var id int64
		if err := w.admin.QueryRow(ctx, `INSERT INTO devices (organization_id, gateway_id, name, adapter_type, host, port, serial)
			VALUES ($1, $2, $3, 'zkteco', '10.0.0.1', 4370, nullif($4, '')) RETURNING id`, g.org, g.id, name, serial).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	a1, a2, b1 := device(w.a, "front", ""), device(w.a, "back", "KEEP-1"), device(w.b, "theirs", "")
	var version int64
	if err := w.admin.QueryRow(ctx, `SELECT row_version FROM devices WHERE id = $1`, a2).Scan(&version); err != nil {
		t.Fatal(err)
	}
	r := w.replica(control.Options{}, commandqueue.Options{})
	c, _, err := r.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	last := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	c.send(protocol.MsgHeartbeat, protocol.Heartbeat{Devices: []protocol.DeviceState{
		{ID: a1, Status: protocol.DeviceOnline, Serial: "ZK-123"},
		{ID: a2, Status: protocol.DeviceAuthFailed, Serial: "OTHER", LastEventAt: &last},
		{ID: b1, Status: protocol.DeviceOnline, Serial: "STOLEN"},
	}})
	type row struct {
		status, serial string
		seen           *time.Time
		version        int64
	}
	read := func(id int64) row {
		var r row
		if err := w.admin.QueryRow(ctx, `SELECT status, coalesce(serial, ''), last_seen_at, row_version FROM devices WHERE id = $1`, id).Scan(&r.status, &r.serial, &r.seen, &r.version); err != nil {
			t.Fatal(err)
		}
		return r
	}
	deadline := time.Now().Add(10 * time.Second)
	for read(a1).status != "online" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := read(a1); got.status != "online" || got.serial != "ZK-123" || got.seen == nil {
		t.Errorf("front: %+v", got)
	}
	// A state alone does not move the row's version (its ETag): the
	// settings did not change.
	if got := read(a2); got.status != "auth_failed" || got.serial != "KEEP-1" || got.seen == nil || !got.seen.Equal(last) || got.version != version {
		t.Errorf("back: %+v, want auth_failed, its own serial, seen at the last event %s, row version %d", got, last, version)
	}
	if got := read(b1); got.status != "unknown" || got.serial != "" || got.seen != nil {
		t.Errorf("another organisation's device was written: %+v", got)
	}
	c.send(protocol.MsgHeartbeat, protocol.Heartbeat{Devices: []protocol.DeviceState{{ID: a1, Status: "exploded"}}})
	env, ok := c.next(protocol.MsgError, 10*time.Second)
	if !ok {
		t.Fatal("no error frame for an unknown device status")
	}
	var ce protocol.ControlError
	if err := json.Unmarshal(env.Data, &ce); err != nil || ce.Field != "data.devices[0].status" {
		t.Fatalf("error frame %s (%v), want one naming data.devices[0].status", env.Data, err)
	}
}
