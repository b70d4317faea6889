package e2e_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/edge/health"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"

	_ "modernc.org/sqlite"
)

// gcWorld is the real Agent API (routes, hub, queue, policy distribution
// advancing as the Agent API does) on loopback over a fresh database, with
// one organisation and one registered gateway. Policy fetches pass through
// a wrapper that counts them per version and can hold one.
type gcWorld struct {
	api     *httptest.Server
	admin   *pgx.Conn
	ing     *pgxpool.Pool
	dash    *policy.Service
	dist    *policy.Distributor // dashboard role: releases and distributions
	queue   *commandqueue.Queue // dashboard role
	adminDB *pgxpool.Pool       // platform administrator (staff_admin): ADMIN work
	actor   accounts.Actor
	orgID   int64
	gateway uuid.UUID
	token   string // provisioning token (unused when key is used)
	secret  string // the organisation's agent enrolment secret
	key     string // API key, when provisioned by the test

	mu        sync.Mutex
	fetches   map[string]int // policy fetch requests per "policy id@version"
	fetchesOK map[string]int // answered 200, per "policy id@version"
	holdKey   string         // the first fetch of this "policy id@version" is held
	held      chan string
	unhold    chan struct{}
}

func newGCWorld(t *testing.T, opts commandqueue.Options, provision bool) *gcWorld {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	ing, err := postgres.Connect(ctx, db.IngestURL, 10, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ing.Close)
	// The Agent API's distribution advancer, faster (every 200 ms).
	stack := startAgentAPI(t, ing, service.NewRegistry(), agentapi.Config{Queue: opts, Control: control.Options{SweepInterval: 100 * time.Millisecond},
		AdvanceInterval: 200 * time.Millisecond})
	gws, routes := stack.gws, stack.routes
	w := &gcWorld{ing: ing, fetches: map[string]int{}, fetchesOK: map[string]int{}, held: make(chan string, 1), unhold: make(chan struct{})}
	w.api = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v2/gateway/policies/") {
			routes.ServeHTTP(rw, r)
			return
		}
		v := strings.TrimPrefix(r.URL.Path, "/v2/gateway/policies/") + "@" + r.URL.Query().Get("version")
		w.mu.Lock()
		w.fetches[v]++
		hold := w.holdKey != "" && w.holdKey == v
		if hold {
			w.holdKey = ""
		}
		w.mu.Unlock()
		if hold {
			w.held <- v
			select {
			case <-w.unhold:
			case <-r.Context().Done():
			}
			http.Error(rw, "held by the test", http.StatusServiceUnavailable)
			return
		}
		rec := &gcStatus{ResponseWriter: rw, code: http.StatusOK}
		routes.ServeHTTP(rec, r)
		if rec.code == http.StatusOK {
			w.mu.Lock()
			w.fetchesOK[v]++
			w.mu.Unlock()
		}
	}))
	t.Cleanup(func() { stack.stop(); w.api.CloseClientConnections(); w.api.Close() })

	dashPool, err := postgres.Connect(ctx, db.DashboardURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dashPool.Close)
	w.adminDB = pg.Pool(t, db.PlatformAdminURL, 2)
	acc := accounts.New(w.adminDB, time.Now)
	admin := accounts.Actor{Name: "e2e", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	o, err := acc.CreateOrganization(ctx, admin, "Alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := acc.RegisterGateway(ctx, admin, o.ID, "GW-CTL", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w.orgID, w.token, w.gateway = o.ID, r.ProvisioningToken, r.GatewayID
	w.secret = newEnrolmentSecret(t, dashPool, o.ID)
	if provision {
		gw, key, err := gws.Provision(ctx, o.ID, "GW-CTL", r.ProvisioningToken)
		if err != nil {
			t.Fatal(err)
		}
		w.gateway, w.key = gw.ID, key
	}
	w.actor = accounts.Actor{Name: "hr", Tenant: postgres.Tenant{OrganizationID: o.ID, Role: postgres.AppOrgAdmin}}
	if w.admin, err = pgx.Connect(ctx, db.AdminURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.admin.Close(context.Background()) })
	if w.dash, err = policy.New(dashPool); err != nil {
		t.Fatal(err)
	}
	if w.queue, err = commandqueue.New(dashPool, commandqueue.Options{}, service.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	w.dist = policy.NewDistributor(dashPool, w.queue)
	return w
}

type gcStatus struct {
	http.ResponseWriter
	code int
}

func (s *gcStatus) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

// release sets a policy's content (creating the policy when id is 0),
// releases it and distributes it to every gateway. It returns the policy
// id and the released version.
func (w *gcWorld) release(t *testing.T, id int64, content string, restart bool) (int64, string) {
	t.Helper()
	v, err := w.releaseOnly(id, content, restart)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.dist.Distribute(context.Background(), w.actor, v.PolicyID, v.Version, nil, 0); err != nil {
		t.Fatal(err)
	}
	return v.PolicyID, v.Version
}

func (w *gcWorld) releaseOnly(id int64, content string, restart bool) (policy.Version, error) {
	ctx := context.Background()
	if id == 0 {
		p, err := w.dash.Create(ctx, w.actor, "P "+uuid.NewString()[:6], []byte(content))
		if err != nil {
			return policy.Version{}, err
		}
		id = p.ID
	} else if _, err := w.dash.Update(ctx, w.actor, id, []byte(content)); err != nil {
		return policy.Version{}, err
	}
	return w.dash.Release(ctx, w.actor, id, restart)
}

type gcCommand struct {
	ID       string
	Status   string
	Attempts int
	Result   string
	Error    string
}

// commands lists the gateway's commands of one type, oldest first.
func (w *gcWorld) commands(t *testing.T, typ string) []gcCommand {
	t.Helper()
	rows, err := w.admin.Query(context.Background(), `SELECT id::text, status, attempts, coalesce(result::text, ''), coalesce(error, '')
		FROM gateway_commands WHERE gateway_id = $1 AND type = $2 ORDER BY created_at, id`, w.gateway, typ)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (gcCommand, error) {
		var c gcCommand
		err := r.Scan(&c.ID, &c.Status, &c.Attempts, &c.Result, &c.Error)
		return c, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (w *gcWorld) command(t *testing.T, id string) gcCommand {
	t.Helper()
	var c gcCommand
	err := w.admin.QueryRow(context.Background(), `SELECT id::text, status, attempts, coalesce(result::text, ''), coalesce(error, '')
		FROM gateway_commands WHERE id = $1`, id).Scan(&c.ID, &c.Status, &c.Attempts, &c.Result, &c.Error)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fetchCounts counts the gateway's fetches of one policy version.
func (w *gcWorld) fetchCounts(id int64, v string) (requests, ok int) {
	k := strconv.FormatInt(id, 10) + "@" + v
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fetches[k], w.fetchesOK[k]
}

// gcDetails reads a gateway's /health/details.
func gcDetails(base string) (*health.Details, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, base+"/health/details", nil)
	req.Header.Set("Authorization", "Bearer "+e2eOperatorToken)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var d health.Details
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return nil, err
	}
	return &d, nil
}

// agentsReport reports whether every uid is listed by the gateway with
// policy version v.
func agentsReport(base string, uids []string, v string) bool {
	d, err := gcDetails(base)
	if err != nil {
		return false
	}
	got := map[string]string{}
	for _, a := range d.Agents.Recent {
		got[a.AgentUID] = a.PolicyVersion
	}
	for _, uid := range uids {
		if got[uid] != v {
			return false
		}
	}
	return len(uids) > 0
}

// gcAgents runs simulated agents with their control side and records what
// they did.
type gcAgents struct {
	mu       sync.Mutex
	applied  map[string]string         // agent → last applied version
	restarts map[string]map[string]int // agent → agent command id → restarts
	acked    map[string]bool           // acknowledged event ids
	res      agentsim.Result
	err      error
	cancel   context.CancelFunc
	done     chan struct{}
}

func startGCAgents(t *testing.T, gatewayURL, secret string, n int) *gcAgents {
	t.Helper()
	a := &gcAgents{applied: map[string]string{}, restarts: map[string]map[string]int{}, acked: map[string]bool{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() {
		defer close(a.done)
		a.res, a.err = agentsim.Run(ctx, agentsim.Options{GatewayURL: gatewayURL, EnrolmentSecret: secret, Agents: n, Rate: 20, BatchSize: 10,
			Control: true, PolicyInterval: 500 * time.Millisecond, CommandWait: 2 * time.Second, HeartbeatInterval: time.Second,
			RestartDelay: 100 * time.Millisecond,
			Observe: func(ids []string, o agentsim.Outcome) {
				if o != agentsim.Acked {
					return
				}
				a.mu.Lock()
				for _, id := range ids {
					a.acked[id] = true
				}
				a.mu.Unlock()
			},
			ObserveControl: func(e agentsim.ControlEvent) {
				a.mu.Lock()
				defer a.mu.Unlock()
				switch e.Kind {
				case agentsim.EventPolicyApplied:
					a.applied[e.AgentUID] = e.PolicyVersion
				case agentsim.EventRestarted:
					if a.restarts[e.AgentUID] == nil {
						a.restarts[e.AgentUID] = map[string]int{}
					}
					a.restarts[e.AgentUID][e.CommandID]++
				}
			}})
	}()
	t.Cleanup(func() { a.stop() })
	return a
}

func (a *gcAgents) stop() agentsim.Result {
	a.cancel()
	<-a.done
	return a.res
}

// allApplied returns the agents' uids once n of them applied version v.
func (a *gcAgents) allApplied(n int, v string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var uids []string
	for uid, got := range a.applied {
		if got == v {
			uids = append(uids, uid)
		}
	}
	if len(uids) < n {
		return nil
	}
	return uids
}

// TestGatewayControlPlaneEndToEnd: the real Agent API, an in-process
// gateway and simulated agents. A released policy is applied by the
// gateway, fetched by every agent (304 afterwards) and reported back; a
// requires_restart release makes the cloud send restart_agent, every agent
// restarts once and confirms, and the command completes in the cloud
// queue; a forced restart loses no acknowledged event; an unknown agent
// fails with a clear error. State shows in /health/details and /metrics.
func TestGatewayControlPlaneEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newGCWorld(t, commandqueue.Options{AckTimeout: 5 * time.Second, ExecTimeout: 60 * time.Second, Backoff: 200 * time.Millisecond}, true)
	_, base := startGCGateway(t, w, map[string]string{
		"STAFF_GATEWAY_ORGANIZATION_API_KEY":     w.key,
		"STAFF_GATEWAY_HEALTH_OPERATOR_TOKEN":    e2eOperatorToken,
		"STAFF_GATEWAY_CONTROL_RESTART_TIMEOUT":  "45s",
		"STAFF_GATEWAY_COLLECTOR_RETRY_AFTER":    "1s",
		"STAFF_GATEWAY_HEALTH_MAX_UNSENT_AGE":    "5m",
		"STAFF_GATEWAY_COLLECTOR_MAX_BODY_BYTES": "8MB",
	})
	const nAgents = 3
	agents := startGCAgents(t, base, w.secret, nAgents)

	// 1. A plain release: the gateway applies it, every agent fetches and
	// reports it.
	pid, v1 := w.release(t, 0, `{"screenshots":{"enabled":true,"interval_seconds":300}}`, false)
	var uids []string
	waitUntil(t, "agents applied "+v1, 60*time.Second, func() bool { uids = agents.allApplied(nAgents, v1); return uids != nil })
	waitUntil(t, "agents report "+v1+" to the gateway", 30*time.Second, func() bool { return agentsReport(base, uids, v1) })
	upd := w.commands(t, "policy_update")
	waitUntil(t, "policy_update completed", 30*time.Second, func() bool { return w.command(t, upd[0].ID).Status == commandqueue.StatusCompleted })
	if _, ok := w.fetchCounts(pid, v1); ok != 1 {
		t.Fatalf("the gateway fetched %s %d times, want once", v1, ok)
	}

	// 2. A release that requires a restart: restart_agent follows the
	// applied policy_update; each agent restarts once and confirms.
	_, v2 := w.release(t, pid, `{"screenshots":{"enabled":true,"interval_seconds":120},"blocked_sites":["games.example.com"]}`, true)
	if v2 == v1 {
		t.Fatalf("the second release kept version %s", v1)
	}
	waitUntil(t, "restart_agent completed in the cloud queue", 90*time.Second, func() bool {
		rs := w.commands(t, "restart_agent")
		return len(rs) == 1 && rs[0].Status == commandqueue.StatusCompleted
	})
	rc := w.commands(t, "restart_agent")[0]
	var rr executor.RestartResult
	if err := json.Unmarshal([]byte(rc.Result), &rr); err != nil {
		t.Fatalf("restart result %q: %v", rc.Result, err)
	}
	if rr.Confirmed != nAgents || rr.Failed != 0 || rr.Mode != protocol.RestartGraceful || rc.Attempts != 1 {
		t.Fatalf("restart_agent result %+v (attempts %d), want %d confirmed graceful restarts", rr, rc.Attempts, nAgents)
	}
	for _, a := range rr.Agents {
		if a.PolicyVersion != v2 {
			t.Errorf("agent %s confirmed its restart on policy %q, want %s", a.AgentUID, a.PolicyVersion, v2)
		}
	}
	agents.mu.Lock()
	for _, uid := range uids {
		if len(agents.restarts[uid]) != 1 {
			t.Errorf("agent %s got %d restart commands, want 1", uid, len(agents.restarts[uid]))
		}
		for id, n := range agents.restarts[uid] {
			if n != 1 {
				t.Errorf("agent %s restarted %d times for command %s, want exactly once", uid, n, id)
			}
		}
	}
	agents.mu.Unlock()
	waitUntil(t, "agents report "+v2, 30*time.Second, func() bool { return agentsReport(base, uids, v2) })
	for _, c := range w.commands(t, "policy_update") {
		if c.Status != commandqueue.StatusCompleted || c.Attempts != 1 {
			t.Errorf("policy_update %s: %s after %d attempts", c.ID, c.Status, c.Attempts)
		}
	}

	// 3. A forced restart while agents send: the requests it cuts are
	// resent with the same ids after the restart.
	forced, err := w.queue.Enqueue(ctx, w.actor.Tenant, commandqueue.NewCommand{GatewayID: w.gateway, Type: protocol.CommandRestartAgent,
		Payload: json.RawMessage(`{"agent":"all","mode":"forced"}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "forced restart completed", 60*time.Second, func() bool { return w.command(t, forced.ID.String()).Status == commandqueue.StatusCompleted })
	// 4. An unknown agent fails with a clear error.
	ghost, err := w.queue.Enqueue(ctx, w.actor.Tenant, commandqueue.NewCommand{GatewayID: w.gateway, Type: protocol.CommandRestartAgent,
		Payload: json.RawMessage(`{"agent":"ghost-pc","mode":"graceful"}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "unknown agent refused", 30*time.Second, func() bool {
		c := w.command(t, ghost.ID.String())
		return c.Status == commandqueue.StatusFailed && strings.Contains(c.Error, `unknown agent "ghost-pc"`)
	})

	// Control state in /health/details and /metrics.
	d, err := gcDetails(base)
	if err != nil {
		t.Fatal(err)
	}
	if d.Control == nil || d.Control.Mode != "websocket" || d.Control.PolicyVersion != v2 || d.Control.CommandsExecuted < 5 {
		t.Fatalf("control in /health/details: %+v", d.Control)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`gateway_control_mode{mode="websocket"} 1`, `gateway_control_mode{mode="rest"} 0`,
		`gateway_policy_info{checksum="`, `version="` + v2 + `"} 1`, "gateway_control_commands_total ", `gateway_agent_command_acks_total{status="completed"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Every event acknowledged to the agents reaches the cloud exactly once.
	res := agents.stop()
	if res.Control.Restarts != 2*nAgents || res.Control.NotModified == 0 {
		t.Errorf("agents' control side: %+v, want %d restarts and some 304s", res.Control, 2*nAgents)
	}
	agents.mu.Lock()
	acked := agents.acked
	agents.mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no event acknowledged")
	}
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
	t.Logf("%d agents; policies %s, %s; restart result %s; agents %s; %d events stored once", nAgents, v1, v2, rc.Result, res, len(acked))
}

func gcStored(t *testing.T, conn *pgx.Conn) map[string]int {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT id::text FROM monitoring.active_windows
		UNION ALL SELECT id::text FROM monitoring.visited_sites UNION ALL SELECT id::text FROM monitoring.user_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id]++
	}
	return out
}

// gcRelay sits between a gateway and the Agent API's control socket,
// relaying every message, counting acknowledgements per command id and
// phase, and, when armed, swallowing the completed/failed acknowledgement
// of commands of one type (a lost answer).
type gcRelay struct {
	srv    *httptest.Server
	target string

	mu       sync.Mutex
	types    map[string]string         // command id → type
	acks     map[string]map[string]int // command id → phase → count
	holdType string
	held     chan string
}

func newGCRelay(t *testing.T, apiURL string) *gcRelay {
	r := &gcRelay{target: "ws" + strings.TrimPrefix(apiURL, "http") + protocol.PathGatewaySocket,
		types: map[string]string{}, acks: map[string]map[string]int{}, held: make(chan string, 4)}
	up := websocket.Upgrader{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		cloud, resp, err := websocket.DefaultDialer.Dial(r.target, http.Header{protocol.HeaderAPIKey: {req.Header.Get(protocol.HeaderAPIKey)}})
		if err != nil {
			code := http.StatusBadGateway
			if resp != nil {
				code = resp.StatusCode
			}
			http.Error(rw, "relay: "+err.Error(), code)
			return
		}
		gw, err := up.Upgrade(rw, req, nil)
		if err != nil {
			cloud.Close()
			return
		}
		var once sync.Once
		closeBoth := func() { once.Do(func() { gw.Close(); cloud.Close() }) }
		go func() { // cloud → gateway
			defer closeBoth()
			for {
				mt, msg, err := cloud.ReadMessage()
				if err != nil {
					return
				}
				var env protocol.Envelope
				if json.Unmarshal(msg, &env) == nil && env.Type == protocol.MsgCommand {
					var c protocol.Command
					if json.Unmarshal(env.Data, &c) == nil {
						r.mu.Lock()
						r.types[c.ID] = c.Type
						r.mu.Unlock()
					}
				}
				if gw.WriteMessage(mt, msg) != nil {
					return
				}
			}
		}()
		defer closeBoth()
		for { // gateway → cloud
			mt, msg, err := gw.ReadMessage()
			if err != nil {
				return
			}
			var env protocol.Envelope
			if json.Unmarshal(msg, &env) == nil && env.Type == protocol.MsgCommandAck {
				var a protocol.CommandAck
				if json.Unmarshal(env.Data, &a) == nil {
					r.mu.Lock()
					if r.acks[a.CommandID] == nil {
						r.acks[a.CommandID] = map[string]int{}
					}
					r.acks[a.CommandID][a.Phase]++
					hold := a.Phase != protocol.AckReceived && r.holdType != "" && r.types[a.CommandID] == r.holdType
					r.mu.Unlock()
					if hold {
						select {
						case r.held <- a.CommandID:
						default:
						}
						continue
					}
				}
			}
			if cloud.WriteMessage(mt, msg) != nil {
				return
			}
		}
	}))
	t.Cleanup(func() { r.srv.CloseClientConnections(); r.srv.Close() })
	return r
}

func (r *gcRelay) url() string {
	return "ws" + strings.TrimPrefix(r.srv.URL, "http") + protocol.PathGatewaySocket
}

func (r *gcRelay) hold(typ string) { r.mu.Lock(); r.holdType = typ; r.mu.Unlock() }

func (r *gcRelay) ackCount(id, phase string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acks[id][phase]
}

// gcGatewayBinary builds cmd/gateway into the test's directory.
func gcGatewayBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/staffcontrol/staffcontrol/cmd/gateway")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/gateway: %v\n%s", err, out)
	}
	return bin
}

// gcProcess is a gateway OS process.
type gcProcess struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	mu   *sync.Mutex
}

type gcLog struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l gcLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 4<<20 {
		l.b.Reset()
	}
	return l.b.Write(p)
}

func startGCProcess(t *testing.T, bin, cfgPath, base string) *gcProcess {
	t.Helper()
	p := &gcProcess{cmd: exec.Command(bin, "--config", cfgPath), logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	p.cmd.Stdout = gcLog{p.mu, p.logs}
	p.cmd.Stderr = io.MultiWriter(gcLog{p.mu, p.logs}, logtest.Writer(t, "gateway stderr"))
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			_ = p.cmd.Wait()
		}
	})
	waitUntil(t, "gateway process serving", 60*time.Second, func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

func (p *gcProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

func (p *gcProcess) log() string { p.mu.Lock(); defer p.mu.Unlock(); return p.logs.String() }

// ledgerRows counts a command id's rows in a stopped gateway's ledger.
func ledgerRows(t *testing.T, dir, id string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "commands.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM executed_commands WHERE id = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func gcFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestGatewayProcessKilledAroundPolicyUpdate: a real gateway process
// (provisioning itself, control socket through a relay) is SIGKILLed
// twice around a policy_update: once after the command ran and was
// recorded in the ledger but before its completion reached the cloud, and
// once while the policy fetch was in flight (nothing recorded). After each
// restart the cloud redelivers the command, and each command is applied
// exactly once: the ledger holds one row per id, the first is answered
// from the ledger without fetching again, the second is fetched and
// applied once, and both complete in the cloud. Agents keep working
// across the restarts and report the versions.
func TestGatewayProcessKilledAroundPolicyUpdate(t *testing.T) {
	t.Parallel()
	bin := gcGatewayBinary(t)
	w := newGCWorld(t, commandqueue.Options{AckTimeout: 2 * time.Second, ExecTimeout: 3 * time.Second, Backoff: 100 * time.Millisecond}, false)
	relay := newGCRelay(t, w.api.URL)
	dir := t.TempDir()
	port := gcFreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfgPath := filepath.Join(dir, "gateway.yml")
	cfg := fmt.Sprintf(`server:
  url: %s
  control_url: %s
  timeout: 10s
organization:
  id: %d
  provisioning_token: %s
gateway:
  serial: GW-CTL
  listen: 127.0.0.1:%d
  grpc_listen: "off"
buffer:
  path: %s
uplink:
  flush_interval: 100ms
  backoff_initial: 50ms
  backoff_max: 500ms
control:
  backoff_initial: 100ms
  backoff_max: 1s
health:
  operator_token: %s
logging:
  level: debug
`, w.api.URL, relay.url(), w.orgID, w.token, port, filepath.Join(dir, "buffer.sqlite"), e2eOperatorToken)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ledgerDir := filepath.Join(dir, "control")
	p := startGCProcess(t, bin, cfgPath, base)
	defer func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", p.log())
		}
	}()
	socketUp := func() bool {
		d, err := gcDetails(base)
		return err == nil && d.Control != nil && d.Control.Mode == "websocket"
	}
	waitUntil(t, "gateway provisioned and connected", 60*time.Second, socketUp)
	if _, err := os.Stat(filepath.Join(dir, "gateway-key.json")); err != nil {
		t.Fatalf("no key file after provisioning: %v", err)
	}
	const nAgents = 2
	agents := startGCAgents(t, base, w.secret, nAgents)

	// 1. Killed after the command was executed and recorded, before the
	// completion reached the cloud.
	relay.hold("policy_update")
	pid, v1 := w.release(t, 0, `{"activity":{"track_sites":true}}`, false)
	var cmd1 string
	select {
	case cmd1 = <-relay.held:
	case <-time.After(60 * time.Second):
		t.Fatal("the completion of the first policy_update never came")
	}
	p.kill(t)
	relay.hold("")
	if n := ledgerRows(t, ledgerDir, cmd1); n != 1 {
		t.Fatalf("ledger rows for %s after the kill: %d, want 1", cmd1, n)
	}
	if c := w.command(t, cmd1); c.Status == commandqueue.StatusCompleted {
		t.Fatalf("the cloud saw %s completed although the acknowledgement was held", cmd1)
	}
	p = startGCProcess(t, bin, cfgPath, base)
	waitUntil(t, "redelivered command completed", 60*time.Second, func() bool { return w.command(t, cmd1).Status == commandqueue.StatusCompleted })
	if req, ok := w.fetchCounts(pid, v1); req != 1 || ok != 1 {
		t.Errorf("version %s fetched %d times (%d answered), want once: the redelivery must be answered from the ledger", v1, req, ok)
	}
	var uids []string
	waitUntil(t, "agents applied "+v1, 60*time.Second, func() bool { uids = agents.allApplied(nAgents, v1); return uids != nil })
	waitUntil(t, "agents report "+v1, 30*time.Second, func() bool { return agentsReport(base, uids, v1) })

	// 2. Killed while the policy fetch is in flight: nothing recorded; the
	// redelivery runs it. The next version is known before its release
	// (released, then distributed), so its fetch can be held.
	v2v, err := w.releaseOnly(pid, `{"activity":{"track_sites":false}}`, false)
	if err != nil {
		t.Fatal(err)
	}
	v2 := v2v.Version
	w.mu.Lock()
	w.holdKey = strconv.FormatInt(pid, 10) + "@" + v2
	w.mu.Unlock()
	if _, err := w.dist.Distribute(context.Background(), w.actor, pid, v2, nil, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.held:
	case <-time.After(60 * time.Second):
		t.Fatal("the second policy was never fetched")
	}
	p.kill(t)
	close(w.unhold)
	all := w.commands(t, "policy_update")
	if len(all) != 2 {
		t.Fatalf("%d policy_update commands, want 2", len(all))
	}
	cmd2 := all[1].ID
	if n := ledgerRows(t, ledgerDir, cmd2); n != 0 {
		t.Fatalf("ledger rows for %s killed mid-fetch: %d, want 0", cmd2, n)
	}
	p = startGCProcess(t, bin, cfgPath, base)
	waitUntil(t, "second command completed after the restart", 60*time.Second, func() bool { return w.command(t, cmd2).Status == commandqueue.StatusCompleted })
	waitUntil(t, "agents applied "+v2, 60*time.Second, func() bool { return agentsApplied(agents, uids, v2) })
	waitUntil(t, "agents report "+v2, 30*time.Second, func() bool { return agentsReport(base, uids, v2) })
	d, err := gcDetails(base)
	if err != nil {
		t.Fatal(err)
	}
	if d.Control == nil || d.Control.PolicyVersion != v2 || d.Control.PolicyChecksum == "" {
		t.Errorf("gateway control state %+v, want policy %s", d.Control, v2)
	}
	res := agents.stop()
	p.kill(t) // the ledger of a stopped gateway

	// Per command id: one ledger row, completed after two deliveries, the
	// policy fetched and applied once (the first from the ledger after its
	// redelivery; the second fetched twice, answered once).
	for _, id := range []string{cmd1, cmd2} {
		if n := ledgerRows(t, ledgerDir, id); n != 1 {
			t.Errorf("ledger rows for %s: %d, want exactly 1", id, n)
		}
		// Two deliveries (a third only if a busy machine outran the 3 s
		// execution deadline; answered from the ledger all the same).
		if c := w.command(t, id); c.Status != commandqueue.StatusCompleted || c.Attempts < 2 {
			t.Errorf("%s: %s after %d deliveries, want completed after a redelivery", id, c.Status, c.Attempts)
		}
	}
	if n := relay.ackCount(cmd1, protocol.AckCompleted); n < 2 {
		t.Errorf("%s acknowledged completed %d times, want the held one and the one from the ledger", cmd1, n)
	}
	if n := relay.ackCount(cmd2, protocol.AckCompleted); n < 1 {
		t.Errorf("%s never acknowledged completed", cmd2)
	}
	if req, ok := w.fetchCounts(pid, v1); req != 1 || ok != 1 {
		t.Errorf("version %s: %d fetches, %d answered; want 1 and 1", v1, req, ok)
	}
	if req, ok := w.fetchCounts(pid, v2); req != 2 || ok != 1 {
		t.Errorf("version %s: %d fetches, %d answered; want 2 (one cut by the kill) and 1", v2, req, ok)
	}
	t.Logf("commands %s and %s each applied once across two SIGKILLs; agents %+v", cmd1, cmd2, res.Control)
}

// agentsApplied reports whether the agents last applied version v.
func agentsApplied(a *gcAgents, uids []string, v string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, uid := range uids {
		if a.applied[uid] != v {
			return false
		}
	}
	return true
}
