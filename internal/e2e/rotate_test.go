package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	edgecontrol "github.com/staffcontrol/staffcontrol/internal/edge/control"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/edge/keyrotate"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// rotateWorld is the real Agent API (routes, hub, queue) on loopback over
// a fresh database, with one organisation whose gateway provisioned itself
// into a key file, as a gateway does at first start.
type rotateWorld struct {
	api     *httptest.Server
	reg     *prometheus.Registry
	admin   *pgx.Conn
	queue   *commandqueue.Queue // as the dashboard role
	tenant  postgres.Tenant
	gateway uuid.UUID
	dir     string // the gateway's state: key file and control directory

	mu      sync.Mutex
	sockets []socketDial // control-socket requests the Agent API received
}

type socketDial struct {
	keyPrefix string
	at        time.Time
}

// newRotateWorld starts the world; execTimeout bounds a delivered command's
// execution before the sweep sends it again.
func newRotateWorld(t *testing.T, execTimeout time.Duration) *rotateWorld {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	ing, err := postgres.Connect(ctx, db.IngestURL, 10, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ing.Close)
	w := &rotateWorld{reg: service.NewRegistry(), dir: t.TempDir()}
	// Short timings so that redeliveries after a simulated crash come
	// within seconds: a delivery not acknowledged "received" in 2 s, or
	// not finished execTimeout after it, is sent again.
	stack := startAgentAPI(t, ing, w.reg, agentapi.Config{Queue: commandqueue.Options{AckTimeout: 2 * time.Second, ExecTimeout: execTimeout, Backoff: 100 * time.Millisecond},
		Control: control.Options{SweepInterval: 100 * time.Millisecond}})
	routes := stack.routes
	w.api = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == protocol.PathGatewaySocket {
			w.mu.Lock()
			w.sockets = append(w.sockets, socketDial{keyPrefix: auth.KeyPrefix(r.Header.Get(protocol.HeaderAPIKey)), at: time.Now()})
			w.mu.Unlock()
		}
		routes.ServeHTTP(rw, r)
	}))
	t.Cleanup(func() { stack.stop(); w.api.CloseClientConnections(); w.api.Close() })

	dash, err := postgres.Connect(ctx, db.DashboardURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dash.Close)
	if w.queue, err = commandqueue.New(dash, commandqueue.Options{}, service.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	if w.admin, err = pgx.Connect(ctx, db.AdminURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.admin.Close(context.Background()) })
	acc := accounts.New(pg.Pool(t, db.PlatformAdminURL, 2), time.Now)
	admin := accounts.Actor{Name: "e2e", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	o, err := acc.CreateOrganization(ctx, admin, "Alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := acc.RegisterGateway(ctx, admin, o.ID, "GW-ROT", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := enroll.Provision(ctx, http.DefaultClient, w.api.URL, protocol.ProvisionRequest{OrganizationID: o.ID, ProvisioningToken: r.ProvisioningToken, Serial: "GW-ROT"})
	if err != nil {
		t.Fatal(err)
	}
	if err := enroll.Save(w.keyFile(), creds); err != nil {
		t.Fatal(err)
	}
	w.gateway = r.GatewayID
	w.tenant = postgres.Tenant{OrganizationID: o.ID, Role: postgres.AppOrgAdmin}
	return w
}

func (w *rotateWorld) keyFile() string { return filepath.Join(w.dir, enroll.FileName) }

// fileKey is the key in the gateway's key file.
func (w *rotateWorld) fileKey(t *testing.T) string {
	t.Helper()
	c, err := enroll.Load(w.keyFile())
	if err != nil || c == nil {
		t.Fatalf("key file: %v", err)
	}
	return c.APIKey
}

// ping answers GET /v2/gateway/ping's status for key.
func (w *rotateWorld) ping(t *testing.T, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, w.api.URL+protocol.PathGatewayPing, nil)
	req.Header.Set(protocol.HeaderAPIKey, key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (w *rotateWorld) enqueue(t *testing.T, maxAttempts int) uuid.UUID {
	t.Helper()
	c, err := w.queue.Enqueue(context.Background(), w.tenant, commandqueue.NewCommand{GatewayID: w.gateway, Type: protocol.CommandRotateAPIKey,
		Payload: json.RawMessage(`{"overlap_seconds": 600}`), MaxAttempts: maxAttempts, CreatedBy: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func (w *rotateWorld) command(t *testing.T, id uuid.UUID) commandqueue.Command {
	t.Helper()
	c, err := w.queue.Get(context.Background(), w.tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// keyState is the cloud's view: the current key's prefix, and whether a
// key is pending.
func (w *rotateWorld) keyState(t *testing.T) (prefix string, pending bool) {
	t.Helper()
	if err := w.admin.QueryRow(context.Background(), `SELECT api_key_prefix, pending_key_hash IS NOT NULL FROM gateway_instances WHERE id = $1`,
		w.gateway).Scan(&prefix, &pending); err != nil {
		t.Fatal(err)
	}
	return prefix, pending
}

func (w *rotateWorld) socketsWith(prefix string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.sockets {
		if s.keyPrefix == prefix {
			n++
		}
	}
	return n
}

func (w *rotateWorld) counter(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

// faultTransport is the gateway's HTTP transport with hooks that simulate
// a crash at a chosen step: before may refuse to send a request, after may
// swallow an answer the cloud has already given.
type faultTransport struct {
	before func(*http.Request) error
	after  func(*http.Request, []byte) error
	calls  sync.Map // path → *atomic.Int64
}

func (f *faultTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	n, _ := f.calls.LoadOrStore(r.URL.Path, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	if f.before != nil {
		if err := f.before(r); err != nil {
			return nil, err
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || f.after == nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if err := f.after(r, body); err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	return resp, nil
}

func (f *faultTransport) count(path string) int64 {
	if n, ok := f.calls.Load(path); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// rotGateway is one run of the gateway's control plane: Keyring over the
// key file, executor (ledger) with the rotate_api_key handler, control
// client. stop ends it the way a crash does: nothing after the current
// instruction runs.
type rotGateway struct {
	ring   *enroll.Keyring
	ex     *executor.Executor
	client *edgecontrol.Client
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (w *rotateWorld) startGateway(t *testing.T, tr *faultTransport) *rotGateway {
	t.Helper()
	creds, err := enroll.Load(w.keyFile())
	if err != nil || creds == nil {
		t.Fatalf("load key file: %v", err)
	}
	ring, err := enroll.NewKeyring(w.keyFile(), creds)
	if err != nil {
		t.Fatal(err)
	}
	logger := logtest.New(t)
	httpc := &http.Client{Transport: tr}
	ex, err := executor.Open(executor.Options{Dir: filepath.Join(w.dir, "control"), BaseURL: w.api.URL, APIKey: ring.APIKey, Client: httpc,
		Handlers: map[string]executor.Handler{protocol.CommandRotateAPIKey: keyrotate.Handler(ring, httpc, w.api.URL, logger)}})
	if err != nil {
		t.Fatal(err)
	}
	g := &rotGateway{ring: ring, ex: ex, done: make(chan struct{})}
	g.client = edgecontrol.New(edgecontrol.Options{SocketURL: "ws" + strings.TrimPrefix(w.api.URL, "http") + protocol.PathGatewaySocket,
		BaseURL: w.api.URL, APIKey: ring.APIKey, Heartbeat: func() protocol.Heartbeat { return protocol.Heartbeat{} }, Execute: ex.Execute,
		Config: edgecontrol.Config{BackoffInitial: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond, FallbackAfter: 1000}, Logger: logger})
	var ctx context.Context
	ctx, g.cancel = context.WithCancel(context.Background())
	go func() { g.client.Run(ctx); close(g.done) }()
	t.Cleanup(g.stop)
	return g
}

func (g *rotGateway) stop() {
	g.once.Do(func() {
		g.cancel()
		<-g.done
		g.ex.Close()
	})
}

var errCrash = errors.New("simulated crash")

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func resultPrefix(t *testing.T, c commandqueue.Command) string {
	t.Helper()
	var res protocol.RotateAPIKeyResult
	if err := json.Unmarshal(c.Result, &res); err != nil || res.KeyPrefix == "" || res.RotatedAt.IsZero() {
		t.Fatalf("command result %s: %v", c.Result, err)
	}
	return res.KeyPrefix
}

// checkRotated checks the converged state: the gateway's Keyring and key
// file (mode 0600) hold newKey, the cloud's current key is newKey with
// nothing pending, every other key is refused, and the command completed
// reporting newKey's prefix and nothing more.
func (w *rotateWorld) checkRotated(t *testing.T, g *rotGateway, cmd uuid.UUID, newKey string, refused ...string) {
	t.Helper()
	if got := g.ring.APIKey(); got != newKey {
		t.Fatalf("keyring holds %s, want %s", auth.KeyPrefix(got), auth.KeyPrefix(newKey))
	}
	if got := w.fileKey(t); got != newKey {
		t.Fatalf("key file holds %s, want %s", auth.KeyPrefix(got), auth.KeyPrefix(newKey))
	}
	st, err := os.Stat(w.keyFile())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	if prefix, pending := w.keyState(t); prefix != auth.KeyPrefix(newKey) || pending {
		t.Fatalf("cloud: current key %s, pending %v; want %s and nothing pending", prefix, pending, auth.KeyPrefix(newKey))
	}
	for _, k := range refused {
		if code := w.ping(t, k); code != http.StatusUnauthorized {
			t.Fatalf("key %s: ping %d, want 401", auth.KeyPrefix(k), code)
		}
	}
	if code := w.ping(t, newKey); code != http.StatusOK {
		t.Fatalf("new key: ping %d, want 200", code)
	}
	c := w.command(t, cmd)
	if c.Status != commandqueue.StatusCompleted || resultPrefix(t, c) != auth.KeyPrefix(newKey) || strings.Contains(string(c.Result), newKey[len(auth.KeyPrefix(newKey)):]) {
		t.Fatalf("command %s: %s %s", cmd, c.Status, c.Result)
	}
	if strings.Contains(string(c.Payload), "scgw_") {
		t.Fatalf("command payload carries a key: %s", c.Payload)
	}
}

// TestRotateAPIKeyEndToEnd: rotate_api_key sent through the queue is
// executed by the gateway's handler; the old key is refused at once, the
// socket made with it is closed and the client reconnects with the new
// key; a redelivered command issues no second key.
func TestRotateAPIKeyEndToEnd(t *testing.T) {
	t.Parallel()
	w := newRotateWorld(t, 30*time.Second)
	tr := &faultTransport{}
	var confirmedAt atomic.Int64
	tr.after = func(r *http.Request, _ []byte) error {
		if r.URL.Path == protocol.PathGatewayKeyConfirm {
			confirmedAt.Store(time.Now().UnixNano())
		}
		return nil
	}
	g := w.startGateway(t, tr)
	oldKey := g.ring.APIKey()
	eventually(t, "control socket with the old key", 15*time.Second, func() bool { return g.client.Connected() && w.socketsWith(auth.KeyPrefix(oldKey)) > 0 })

	cmd := w.enqueue(t, 3)
	eventually(t, "rotate_api_key completed", 20*time.Second, func() bool { return w.command(t, cmd).Status == commandqueue.StatusCompleted })
	eventually(t, "keyring switched", 10*time.Second, func() bool { return g.ring.APIKey() != oldKey })
	newKey := g.ring.APIKey()
	w.checkRotated(t, g, cmd, newKey, oldKey)

	// The socket made with the old key was closed by the revocation and the
	// client came back with the new key.
	eventually(t, "control socket with the new key", 15*time.Second, func() bool {
		return g.client.Connected() && w.socketsWith(auth.KeyPrefix(newKey)) > 0
	})
	if n := w.counter(t, "control_sockets_revoked_total"); n < 1 {
		t.Fatalf("control_sockets_revoked_total = %v, want ≥ 1", n)
	}
	w.mu.Lock()
	var reconnect time.Duration
	for _, s := range w.sockets {
		if s.keyPrefix == auth.KeyPrefix(newKey) {
			reconnect = s.at.Sub(time.Unix(0, confirmedAt.Load()))
			break
		}
	}
	w.mu.Unlock()
	t.Logf("new-key socket dialled %v after the confirmation answer (client backoff ≤ 200 ms)", reconnect.Round(time.Millisecond))
	if reconnect > 5*time.Second {
		t.Errorf("the old-key socket was replaced %v after the confirmation; want it closed within 1 s", reconnect)
	}
	if n := w.socketsWith(auth.KeyPrefix(oldKey)); n != 1 {
		t.Errorf("%d socket dials with the old key, want 1 (none after the rotation)", n)
	}

	// Redelivery (a lost acknowledgement): completed again, no new key.
	rotates := tr.count(protocol.PathGatewayKeyRotate)
	if _, err := w.admin.Exec(context.Background(), `UPDATE gateway_commands SET status = 'pending', next_attempt_at = now(), completed_at = NULL WHERE id = $1`, cmd); err != nil {
		t.Fatal(err)
	}
	eventually(t, "redelivered command completed", 20*time.Second, func() bool {
		c := w.command(t, cmd)
		return c.Status == commandqueue.StatusCompleted && c.Attempts >= 2
	})
	w.checkRotated(t, g, cmd, newKey, oldKey)
	if ran, _ := g.ex.Executed(context.Background(), cmd.String()); !ran {
		t.Fatal("the ledger does not hold the command after its redelivery")
	}
	t.Logf("rotate requests: %d before the redelivery, %d after (the ledger answers a recorded command; a command the "+
		"socket's closing kept out of the ledger is answered \"rotated\" by the cloud)", rotates, tr.count(protocol.PathGatewayKeyRotate))
}

// TestRotateAPIKeyRunsOnceFromTheLedger: the executor records the outcome;
// executing the same command again answers from the ledger, without a
// request to the cloud.
func TestRotateAPIKeyRunsOnceFromTheLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newRotateWorld(t, 30*time.Second)
	creds, _ := enroll.Load(w.keyFile())
	ring, err := enroll.NewKeyring(w.keyFile(), creds)
	if err != nil {
		t.Fatal(err)
	}
	tr := &faultTransport{}
	httpc := &http.Client{Transport: tr}
	ex, err := executor.Open(executor.Options{Dir: filepath.Join(w.dir, "control"), BaseURL: w.api.URL, APIKey: ring.APIKey, Client: httpc,
		Handlers: map[string]executor.Handler{protocol.CommandRotateAPIKey: keyrotate.Handler(ring, httpc, w.api.URL, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	oldKey := ring.APIKey()
	id := w.enqueue(t, 3)
	cmd := protocol.Command{ID: id.String(), Type: protocol.CommandRotateAPIKey, Payload: json.RawMessage(`{"overlap_seconds": 600}`)}
	first, err := ex.Execute(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	newKey := ring.APIKey()
	if newKey == oldKey {
		t.Fatal("the key did not change")
	}
	requests := tr.count(protocol.PathGatewayKeyRotate) + tr.count(protocol.PathGatewayKeyConfirm)
	for i := 0; i < 3; i++ {
		again, err := ex.Execute(ctx, cmd)
		if err != nil || string(again) != string(first) {
			t.Fatalf("re-execution %d = %s, %v; want the recorded %s", i, again, err, first)
		}
	}
	if n := tr.count(protocol.PathGatewayKeyRotate) + tr.count(protocol.PathGatewayKeyConfirm); n != requests || requests != 2 {
		t.Fatalf("requests: %d for the first run, %d after re-executions; want 2 and no more", requests, n)
	}
	if ring.APIKey() != newKey {
		t.Fatal("a re-execution changed the key")
	}
	// Without the ledger (a crash after the confirmation, before the
	// record), the handler itself converges: the cloud answers "rotated".
	h := keyrotate.Handler(ring, httpc, w.api.URL, nil)
	res, err := h(ctx, cmd)
	if err != nil || !strings.Contains(string(res), auth.KeyPrefix(newKey)) || ring.APIKey() != newKey {
		t.Fatalf("handler re-run without the ledger = %s, %v (key %s)", res, err, auth.KeyPrefix(ring.APIKey()))
	}
	if prefix, pending := w.keyState(t); prefix != auth.KeyPrefix(newKey) || pending {
		t.Fatalf("cloud after the re-run: %s pending=%v", prefix, pending)
	}
	if code := w.ping(t, oldKey); code != http.StatusUnauthorized {
		t.Fatalf("old key: %d", code)
	}
}

// TestRotateAPIKeyCrashBeforeSave: the gateway dies after the cloud issued
// the new key and before the key reached its disk. It restarts with the old
// key (still valid), the command is redelivered, a fresh key replaces the
// lost one, and the rotation completes.
func TestRotateAPIKeyCrashBeforeSave(t *testing.T) {
	t.Parallel()
	w := newRotateWorld(t, 3*time.Second)
	var lost protocol.KeyRotateResponse
	var g *rotGateway
	tr := &faultTransport{}
	tr.after = func(r *http.Request, body []byte) error {
		if r.URL.Path != protocol.PathGatewayKeyRotate {
			return nil
		}
		_ = json.Unmarshal(body, &lost)
		go g.stop() // the process dies; the answer is never seen
		g.cancel()
		return errCrash
	}
	g = w.startGateway(t, tr)
	oldKey := g.ring.APIKey()
	cmd := w.enqueue(t, 3)
	eventually(t, "crash", 20*time.Second, func() bool {
		select {
		case <-g.done:
			return true
		default:
			return false
		}
	})
	g.stop()
	if lost.Status != protocol.KeyStatusPending || lost.APIKey == "" {
		t.Fatalf("the cloud's answer before the crash: %+v", lost)
	}
	// After the crash: the old key on disk and valid, the lost key pending,
	// the command unfinished.
	if w.fileKey(t) != oldKey {
		t.Fatal("the key file changed although the key was never saved")
	}
	if _, pending := w.keyState(t); !pending {
		t.Fatal("no pending key after the crash")
	}
	if code := w.ping(t, oldKey); code != http.StatusOK {
		t.Fatalf("old key after the crash: %d, want 200 (never locked out)", code)
	}
	if c := w.command(t, cmd); c.Status == commandqueue.StatusCompleted || c.Status == commandqueue.StatusFailed {
		t.Fatalf("command is %s after the crash", c.Status)
	}

	// Restart: the redelivered command rotates again.
	g2 := w.startGateway(t, &faultTransport{})
	eventually(t, "redelivered rotation completed", 30*time.Second, func() bool { return w.command(t, cmd).Status == commandqueue.StatusCompleted })
	eventually(t, "keyring switched", 10*time.Second, func() bool { return g2.ring.APIKey() != oldKey })
	newKey := g2.ring.APIKey()
	if newKey == lost.APIKey {
		t.Fatal("the lost key came back")
	}
	w.checkRotated(t, g2, cmd, newKey, oldKey, lost.APIKey)
	if c := w.command(t, cmd); c.Attempts < 2 {
		t.Fatalf("attempts = %d, want a redelivery", c.Attempts)
	}
	eventually(t, "control socket with the new key", 15*time.Second, func() bool {
		return g2.client.Connected() && w.socketsWith(auth.KeyPrefix(newKey)) > 0
	})
}

// TestRotateAPIKeyCrashAfterSave: the gateway dies after saving the new
// key and before confirming it. It restarts with the new key; its first
// request promotes the key, revokes the old one and completes the command.
func TestRotateAPIKeyCrashAfterSave(t *testing.T) {
	t.Parallel()
	w := newRotateWorld(t, 3*time.Second)
	var g *rotGateway
	tr := &faultTransport{}
	tr.before = func(r *http.Request) error {
		if r.URL.Path != protocol.PathGatewayKeyConfirm {
			return nil
		}
		go g.stop()
		g.cancel()
		return errCrash
	}
	g = w.startGateway(t, tr)
	oldKey := g.ring.APIKey()
	cmd := w.enqueue(t, 3)
	eventually(t, "crash", 20*time.Second, func() bool {
		select {
		case <-g.done:
			return true
		default:
			return false
		}
	})
	g.stop()
	saved := w.fileKey(t)
	if saved == oldKey {
		t.Fatal("the key file still holds the old key")
	}
	// Both keys are valid for now: the cloud does not know which one the
	// gateway holds. (Using the old one is harmless inside the overlap.)
	if code := w.ping(t, oldKey); code != http.StatusOK {
		t.Fatalf("old key before the restart: %d", code)
	}
	if c := w.command(t, cmd); c.Status == commandqueue.StatusCompleted {
		t.Fatal("the command completed although the new key was never used")
	}

	g2 := w.startGateway(t, &faultTransport{})
	eventually(t, "command completed by the new key's first use", 30*time.Second, func() bool { return w.command(t, cmd).Status == commandqueue.StatusCompleted })
	w.checkRotated(t, g2, cmd, saved, oldKey)
	eventually(t, "control socket with the new key", 15*time.Second, func() bool { return g2.client.Connected() })
	if n := w.socketsWith(auth.KeyPrefix(saved)); n < 1 {
		t.Fatalf("no socket dialled with the saved key")
	}
}

// TestRotateAPIKeyExpiredBeforeConfirm: the overlap passes between the
// saving and the confirmation and the old key is used meanwhile, so the
// cloud discards the new key. The handler goes back to the old key, which
// still works: the gateway is not locked out, and the command fails with a
// clear error.
func TestRotateAPIKeyExpiredBeforeConfirm(t *testing.T) {
	t.Parallel()
	w := newRotateWorld(t, 30*time.Second)
	tr := &faultTransport{}
	var oldKey string
	tr.before = func(r *http.Request) error {
		if r.URL.Path != protocol.PathGatewayKeyConfirm {
			return nil
		}
		ctx := context.Background()
		if _, err := w.admin.Exec(ctx, `UPDATE gateway_instances SET pending_key_expires_at = now() - interval '1 second' WHERE id = $1`, w.gateway); err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodGet, w.api.URL+protocol.PathGatewayPing, nil)
		req.Header.Set(protocol.HeaderAPIKey, oldKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("old key ping %d", resp.StatusCode)
		}
		return nil
	}
	g := w.startGateway(t, tr)
	oldKey = g.ring.APIKey()
	cmd := w.enqueue(t, 1)
	eventually(t, "command failed", 20*time.Second, func() bool { return w.command(t, cmd).Status == commandqueue.StatusFailed })
	c := w.command(t, cmd)
	if c.Error == nil || !strings.Contains(*c.Error, "expired before it was confirmed") {
		t.Fatalf("command error = %v", c.Error)
	}
	if g.ring.APIKey() != oldKey || w.fileKey(t) != oldKey {
		t.Fatal("the gateway did not go back to its old key")
	}
	if code := w.ping(t, oldKey); code != http.StatusOK {
		t.Fatalf("old key: %d, want 200", code)
	}
	if prefix, pending := w.keyState(t); prefix != auth.KeyPrefix(oldKey) || pending {
		t.Fatalf("cloud: %s pending=%v", prefix, pending)
	}
	eventually(t, "still connected", 15*time.Second, g.client.Connected)
}

// TestRotateAPIKeyRetriesTransientFailures: the first rotate answer is lost
// on the way (the cloud issued a key nobody received) and the first
// confirmation cannot be sent. The handler retries both: the second rotate
// replaces the lost pending key, and the rotation completes in one run.
func TestRotateAPIKeyRetriesTransientFailures(t *testing.T) {
	t.Parallel()
	w := newRotateWorld(t, 30*time.Second)
	var lost protocol.KeyRotateResponse
	var rotateFails, confirmFails atomic.Int64
	tr := &faultTransport{}
	tr.after = func(r *http.Request, body []byte) error {
		if r.URL.Path == protocol.PathGatewayKeyRotate && rotateFails.Add(1) == 1 {
			_ = json.Unmarshal(body, &lost)
			return errors.New("connection reset (simulated)")
		}
		return nil
	}
	tr.before = func(r *http.Request) error {
		if r.URL.Path == protocol.PathGatewayKeyConfirm && confirmFails.Add(1) == 1 {
			return errors.New("connection refused (simulated)")
		}
		return nil
	}
	g := w.startGateway(t, tr)
	oldKey := g.ring.APIKey()
	cmd := w.enqueue(t, 1) // one delivery: the handler's own retries must do
	eventually(t, "rotation completed", 30*time.Second, func() bool { return w.command(t, cmd).Status == commandqueue.StatusCompleted })
	eventually(t, "keyring switched", 10*time.Second, func() bool { return g.ring.APIKey() != oldKey })
	if lost.APIKey == "" || lost.APIKey == g.ring.APIKey() {
		t.Fatalf("lost answer %+v", lost)
	}
	w.checkRotated(t, g, cmd, g.ring.APIKey(), oldKey, lost.APIKey)
	if r, c := tr.count(protocol.PathGatewayKeyRotate), tr.count(protocol.PathGatewayKeyConfirm); r != 2 || c != 2 {
		t.Fatalf("requests: %d rotate, %d confirm; want 2 and 2", r, c)
	}
}
