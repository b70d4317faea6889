package liveevents_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/liveevents"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// Waits: how long an expected event may take, and how long a stream must
// stay quiet to count as showing nothing.
const (
	arrive = 10 * time.Second
	quiet  = 600 * time.Millisecond
)

// env is a database with organisations A and B, a started hub over the
// dashboard pool, and a loopback server whose handler serves the tenant
// named by the test-only ?as= parameter (the Dashboard API's
// authentication stands in this place).
type env struct {
	t      *testing.T
	ctx    context.Context
	db     *pgtest.Database
	admin  *pgx.Conn
	a, b   pgtest.Seeded
	pool   *pgxpool.Pool
	hub    *liveevents.Hub
	srv    *httptest.Server
	reg    *prometheus.Registry
	tenant map[string]postgres.Tenant
}

func newEnv(t *testing.T, cfg liveevents.Config) *env {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	a, err := pgtest.SeedOrganization(ctx, admin, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	b, err := pgtest.SeedOrganization(ctx, admin, "beta")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, db: db, admin: admin, a: a, b: b, pool: pg.Pool(t, db.DashboardURL, 8), reg: prometheus.NewRegistry()}
	e.tenant = map[string]postgres.Tenant{
		"a-admin":    {OrganizationID: a.OrganizationID, Role: postgres.AppOrgAdmin, UserID: a.UserID},
		"a-hr":       {OrganizationID: a.OrganizationID, Role: postgres.AppHR, UserID: a.UserID},
		"b-admin":    {OrganizationID: b.OrganizationID, Role: postgres.AppOrgAdmin, UserID: b.UserID},
		"a-lead":     {OrganizationID: a.OrganizationID, Role: postgres.AppDepartmentLead, UserID: a.UserID, Scope: fmt.Sprintf("department:%d", a.DepartmentID)},
		"a-employee": {OrganizationID: a.OrganizationID, Role: postgres.AppEmployee, UserID: a.UserID, Scope: fmt.Sprintf("employee:%d", a.EmployeeID)},
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 150 * time.Millisecond
	}
	if cfg.PruneInterval == 0 {
		cfg.PruneInterval = -1
	}
	e.hub = liveevents.New(cfg, liveevents.Deps{DB: e.pool, Logger: logtest.New(t), WriteError: writeError, Registerer: e.reg})
	if err := e.hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ten, ok := e.tenant[r.URL.Query().Get("as")]
		if !ok {
			http.Error(w, "no such test tenant", http.StatusUnauthorized)
			return
		}
		e.hub.Serve(w, r, e.pool, ten)
	}))
	// A whole-answer write timeout far shorter than the streams: they live
	// on because each write moves the deadline.
	e.srv.Config.WriteTimeout = 300 * time.Millisecond
	e.srv.Start()
	t.Cleanup(func() {
		// The hub first: its Stop ends the streams the server's Close
		// would otherwise wait for.
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.hub.Stop(stopCtx); err != nil {
			t.Errorf("hub stop: %v", err)
		}
		e.srv.Close()
	})
	return e
}

// writeError stands in for the Dashboard API's error writer: the apperr
// code and field as JSON, with 400 or 503.
func writeError(w http.ResponseWriter, _ *http.Request, err error) {
	e := apperr.As(err)
	status := http.StatusServiceUnavailable
	if e.Code == apperr.Invalid {
		status = http.StatusBadRequest
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds())))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": string(e.Code), "field": e.Field, "message": e.Message})
}

// exec changes the database as the administrator (as another process would).
func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.admin.Exec(e.ctx, sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	// What it staged, published at once (the hub's own publisher would
	// within PublishInterval), so the log holds it when exec returns.
	if _, err := e.hub.Publish(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

// setGateway sets a gateway's status (an event when it changes).
func (e *env) setGateway(o pgtest.Seeded, status string) {
	e.t.Helper()
	e.exec(`UPDATE gateway_instances SET status = $2 WHERE id = $1`, o.GatewayID, status)
}

// flipGateway causes n gateway.status events for o (online and offline in
// turn), one transaction each.
func (e *env) flipGateway(o pgtest.Seeded, n int) {
	e.t.Helper()
	for range n {
		e.exec(`UPDATE gateway_instances SET status = CASE status WHEN 'offline' THEN 'online' ELSE 'offline' END WHERE id = $1`, o.GatewayID)
	}
}

// sse is one message of a stream: an event, or a comment (Comment set).
type sse struct {
	ID, Event, Data, Comment string
}

// client is one open stream.
type client struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc
	msgs   chan sse
	done   chan struct{} // closed when the stream ends
}

// connect opens a stream as tenant with the extra query and headers.
func (e *env) connect(as string, query url.Values, header http.Header) *client {
	e.t.Helper()
	resp, cancel := e.get(as, query, header)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET events as %s: %s", as, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		e.t.Fatalf("Content-Type %q", ct)
	}
	c := &client{t: e.t, resp: resp, cancel: cancel, msgs: make(chan sse, 1000), done: make(chan struct{})}
	go c.read()
	e.t.Cleanup(c.close)
	// The stream's first line is a comment, written once the stream's
	// starting point is fixed: events caused after it are the client's.
	if m := c.next(arrive); m.Comment != "live events" {
		e.t.Fatalf("first message %+v, want the opening comment", m)
	}
	return c
}

func (e *env) get(as string, query url.Values, header http.Header) (*http.Response, context.CancelFunc) {
	e.t.Helper()
	q := url.Values{"as": {as}}
	for k, v := range query {
		q[k] = v
	}
	ctx, cancel := context.WithCancel(e.ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/api/v2/events?"+q.Encode(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	return resp, cancel
}

func (c *client) read() {
	defer close(c.done)
	sc := bufio.NewScanner(c.resp.Body)
	var m sse
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if m != (sse{}) {
				c.msgs <- m
			}
			m = sse{}
		case strings.HasPrefix(line, ": "):
			c.msgs <- sse{Comment: strings.TrimPrefix(line, ": ")}
		case strings.HasPrefix(line, "id: "):
			m.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			m.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			m.Data = strings.TrimPrefix(line, "data: ")
		default:
			c.msgs <- sse{Comment: "UNEXPECTED LINE " + line}
		}
	}
}

func (c *client) close() {
	c.cancel()
	c.resp.Body.Close()
	<-c.done
}

// next is the next message within wait (a zero sse after it).
func (c *client) next(wait time.Duration) sse {
	c.t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case m := <-c.msgs:
		return m
	case <-c.done:
		select {
		case m := <-c.msgs:
			return m
		default:
		}
		c.t.Fatalf("stream ended")
	case <-timer.C:
		c.t.Fatalf("no message within %s", wait)
	}
	return sse{}
}

// events are the next n events (heartbeats skipped), each within arrive.
func (c *client) events(n int) []sse {
	c.t.Helper()
	var out []sse
	deadline := time.Now().Add(arrive)
	for len(out) < n {
		m := c.next(time.Until(deadline))
		if m.Comment == "heartbeat" {
			continue
		}
		if m.Comment != "" {
			c.t.Fatalf("unexpected comment %q", m.Comment)
		}
		out = append(out, m)
	}
	return out
}

// nothing checks that for quiet only heartbeats arrive (and at least one).
func (c *client) nothing() {
	c.t.Helper()
	deadline := time.Now().Add(quiet)
	beats := 0
	for time.Now().Before(deadline) {
		timer := time.NewTimer(time.Until(deadline))
		select {
		case m := <-c.msgs:
			if m.Comment != "heartbeat" {
				c.t.Errorf("got %+v, want only heartbeats", m)
			}
			beats++
		case <-c.done:
			c.t.Fatalf("stream ended")
		case <-timer.C:
		}
		timer.Stop()
	}
	if beats == 0 {
		c.t.Errorf("no heartbeat within %s", quiet)
	}
}

// data decodes an event's data.
func data(t *testing.T, m sse) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(m.Data), &v); err != nil {
		t.Fatalf("event %s data %q: %v", m.ID, m.Data, err)
	}
	return v
}

// ids are the events' ids.
func ids(t *testing.T, ms []sse) []int64 {
	t.Helper()
	out := make([]int64, len(ms))
	for i, m := range ms {
		id, err := strconv.ParseInt(m.ID, 10, 64)
		if err != nil {
			t.Fatalf("event id %q", m.ID)
		}
		out[i] = id
	}
	return out
}

// TestAnOrganisationSeesItsOwnEventsOnly: a stream of A sees A's gateway
// status, command status and distribution progress, none of B's; B's
// stream sees only B's.
func TestAnOrganisationSeesItsOwnEventsOnly(t *testing.T) {
	e := newEnv(t, liveevents.Config{})
	ca, cb := e.connect("a-admin", nil, nil), e.connect("b-admin", nil, nil)
	hr := e.connect("a-hr", nil, nil)

	e.setGateway(e.a, "offline")
	e.exec(`UPDATE gateway_commands SET status = 'delivered' WHERE organization_id = $1`, e.a.OrganizationID)
	e.exec(`UPDATE policy_distributions SET stage = 'full' WHERE organization_id = $1`, e.a.OrganizationID)
	for name, c := range map[string]*client{"ORG_ADMIN": ca, "HR": hr} {
		got := c.events(3)
		want := []string{liveevents.KindGatewayStatus, liveevents.KindCommandStatus, liveevents.KindDistributionProgress}
		for i, m := range got {
			if m.Event != want[i] {
				t.Fatalf("%s: event %d is %s, want %s", name, i, m.Event, want[i])
			}
		}
		if g := data(t, got[0]); g["gateway_id"] != e.a.GatewayID.String() || g["status"] != "offline" || g["previous"] != "online" {
			t.Errorf("%s: gateway event %v", name, g)
		}
		if c := data(t, got[1]); c["gateway_id"] != e.a.GatewayID.String() || c["status"] != "delivered" || c["previous"] != "pending" || c["type"] == nil {
			t.Errorf("%s: command event %v", name, c)
		}
		if p := data(t, got[2]); p["stage"] != "full" || p["total"] != 1.0 || p["waiting"] != 1.0 || p["policy_id"] != float64(e.a.PolicyID) {
			t.Errorf("%s: progress event %v", name, p)
		}
		if ids := ids(t, got); !(ids[0] < ids[1] && ids[1] < ids[2]) {
			t.Errorf("%s: ids %v not increasing", name, ids)
		}
	}
	cb.nothing()

	e.setGateway(e.b, "offline")
	if m := cb.events(1)[0]; m.Event != liveevents.KindGatewayStatus || data(t, m)["gateway_id"] != e.b.GatewayID.String() {
		t.Errorf("B's own event: %+v", m)
	}
	ca.nothing()
}

// TestLeadsAndEmployeesSeeNothing: department leads' and employees'
// streams stay open with heartbeats only, while an ORG_ADMIN of the same
// organisation receives the events.
func TestLeadsAndEmployeesSeeNothing(t *testing.T) {
	e := newEnv(t, liveevents.Config{})
	lead, emp := e.connect("a-lead", nil, nil), e.connect("a-employee", nil, nil)
	admin := e.connect("a-admin", nil, nil)
	e.flipGateway(e.a, 2)
	e.exec(`UPDATE gateway_commands SET status = 'delivered' WHERE organization_id = $1`, e.a.OrganizationID)
	admin.events(3)
	lead.nothing()
	emp.nothing()
}

// TestResumeReplaysExactlyTheMissedEvents: events 1..3 received, the
// connection dropped, 4..6 caused; a reconnection with Last-Event-ID = 3
// (header, or ?last_event_id=) receives exactly 4..6 in order, then live
// events as usual.
func TestResumeReplaysExactlyTheMissedEvents(t *testing.T) {
	e := newEnv(t, liveevents.Config{})
	c := e.connect("a-admin", nil, nil)
	e.flipGateway(e.a, 3)
	first := ids(t, c.events(3))
	c.close()

	e.flipGateway(e.a, 3)
	e.setGateway(e.b, "offline") // B's, between: invisible, never replayed
	var want []int64             // A's events after first[2], as the database has them
	rows, err := e.admin.Query(e.ctx, `SELECT id FROM dashboard_events WHERE organization_id = $1 AND id > $2 ORDER BY id`, e.a.OrganizationID, first[2])
	if err != nil {
		t.Fatal(err)
	}
	if want, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil || len(want) != 3 {
		t.Fatalf("A's events after %d: %v, %v", first[2], want, err)
	}
	last := strconv.FormatInt(first[2], 10)
	for _, how := range []struct {
		name   string
		query  url.Values
		header http.Header
	}{
		{"header", nil, http.Header{"Last-Event-Id": {last}}},
		{"query", url.Values{"last_event_id": {last}}, nil},
	} {
		t.Run(how.name, func(t *testing.T) {
			r := e.connect("a-admin", how.query, how.header)
			replayed := r.events(len(want))
			if got := ids(t, replayed); !slices.Equal(got, want) {
				t.Errorf("replayed ids %v, want %v", got, want)
			}
			for _, m := range replayed {
				if m.Event != liveevents.KindGatewayStatus || data(t, m)["gateway_id"] != e.a.GatewayID.String() {
					t.Errorf("replayed %+v", m)
				}
			}
			r.nothing() // no duplicates, nothing else
			e.setGateway(e.b, "online")
			e.setGateway(e.a, "revoked")
			m := r.events(1)[0]
			if data(t, m)["status"] != "revoked" {
				t.Errorf("live after replay: %+v", m)
			}
			want = append(want, ids(t, []sse{m})...)
			e.setGateway(e.a, "offline")
			want = append(want, ids(t, r.events(1))...)
			r.close()
		})
	}
}

// TestResumeCommitOrder: ids are handed out in commit order, so an event
// of a transaction that changed first but committed last still reaches a
// client that already received a later-changed one.
func TestResumeCommitOrder(t *testing.T) {
	e := newEnv(t, liveevents.Config{})
	c := e.connect("a-admin", nil, nil)
	other, err := pgx.Connect(e.ctx, e.db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(e.ctx)
	tx, err := other.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(e.ctx) }()
	if _, err := tx.Exec(e.ctx, `UPDATE gateway_commands SET status = 'delivered' WHERE organization_id = $1`, e.a.OrganizationID); err != nil {
		t.Fatal(err)
	}
	e.setGateway(e.a, "offline") // changed later, committed first
	if m := c.events(1)[0]; m.Event != liveevents.KindGatewayStatus {
		t.Fatalf("first: %+v", m)
	}
	if err := tx.Commit(e.ctx); err != nil {
		t.Fatal(err)
	}
	if m := c.events(1)[0]; m.Event != liveevents.KindCommandStatus {
		t.Fatalf("second: %+v", m)
	}
}

// TestBacklogOverflowResets: more missed events than MaxBacklog give a
// reset (carrying the id to continue from), then live events; a resume
// from an id whose successors were pruned resets too; within the backlog
// no reset.
func TestBacklogOverflowResets(t *testing.T) {
	e := newEnv(t, liveevents.Config{MaxBacklog: 4})
	c := e.connect("a-admin", nil, nil)
	e.flipGateway(e.a, 1)
	last := c.events(1)[0].ID
	c.close()

	e.flipGateway(e.a, 4)
	r := e.connect("a-admin", nil, http.Header{"Last-Event-Id": {last}})
	if got := r.events(4); got[0].Event != liveevents.KindGatewayStatus {
		t.Errorf("within the backlog: %+v", got)
	}
	r.close()

	e.flipGateway(e.a, 5)
	r = e.connect("a-admin", nil, http.Header{"Last-Event-Id": {last}})
	m := r.events(1)[0]
	if m.Event != liveevents.KindReset || data(t, m)["reason"] != "backlog" {
		t.Fatalf("overflow: %+v, want a reset", m)
	}
	e.setGateway(e.a, "revoked")
	if n := r.events(1)[0]; n.Event != liveevents.KindGatewayStatus || ids(t, []sse{n})[0] <= ids(t, []sse{m})[0] {
		t.Errorf("after the reset: %+v (reset %s)", n, m.ID)
	}
	r.close()

	// Pruned: the log no longer holds the events after last.
	e.exec(`DELETE FROM dashboard_events WHERE id <= $1::bigint + 2`, last)
	r = e.connect("a-admin", nil, http.Header{"Last-Event-Id": {last}})
	if m := r.events(1)[0]; m.Event != liveevents.KindReset || data(t, m)["reason"] != "pruned" {
		t.Fatalf("pruned: %+v, want a reset", m)
	}
	// An id from the future (another database?) resets as well.
	r = e.connect("a-admin", nil, http.Header{"Last-Event-Id": {"999999999"}})
	if m := r.events(1)[0]; m.Event != liveevents.KindReset {
		t.Fatalf("future id: %+v, want a reset", m)
	}
}

// TestLostListenConnectionCatchesUp: the hub's LISTEN connection killed
// from the administrator's connection; clients still receive the events
// caused meanwhile and after.
func TestLostListenConnectionCatchesUp(t *testing.T) {
	e := newEnv(t, liveevents.Config{Heartbeat: time.Minute})
	c := e.connect("a-admin", nil, nil)
	e.flipGateway(e.a, 1)
	c.events(1)

	var killed int
	deadline := time.Now().Add(arrive)
	for killed == 0 && time.Now().Before(deadline) {
		if err := e.admin.QueryRow(e.ctx, `SELECT count(pg_terminate_backend(pid))::int FROM pg_stat_activity
			WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`).Scan(&killed); err != nil {
			t.Fatal(err)
		}
	}
	if killed != 1 {
		t.Fatalf("terminated %d LISTEN connections, want 1", killed)
	}
	e.flipGateway(e.a, 2) // probably before the hub listens again: their NOTIFYs are lost
	if got := c.events(2); got[0].Event != liveevents.KindGatewayStatus || got[1].Event != liveevents.KindGatewayStatus {
		t.Errorf("caught up: %+v", got)
	}
	// Listening again: later events arrive as usual.
	for range 2 {
		e.flipGateway(e.a, 1)
		c.events(1)
	}
}

// TestKindsFilter: ?kinds= limits the stream to those kinds; an unknown
// kind or a malformed Last-Event-ID is refused naming the field.
func TestKindsFilter(t *testing.T) {
	e := newEnv(t, liveevents.Config{})
	c := e.connect("a-admin", url.Values{"kinds": {"command.status,policy_distribution.progress"}}, nil)
	e.setGateway(e.a, "offline")
	e.exec(`UPDATE gateway_commands SET status = 'delivered' WHERE organization_id = $1`, e.a.OrganizationID)
	if m := c.events(1)[0]; m.Event != liveevents.KindCommandStatus {
		t.Errorf("filtered: %+v", m)
	}
	c.nothing()

	for _, tc := range []struct {
		query  url.Values
		header http.Header
		field  string
	}{
		{url.Values{"kinds": {"gateway.status,bogus"}}, nil, "kinds"},
		{url.Values{"kinds": {"reset"}}, nil, "kinds"},
		{nil, http.Header{"Last-Event-Id": {"x1"}}, "Last-Event-ID"},
		{url.Values{"last_event_id": {"-4"}}, nil, "last_event_id"},
	} {
		resp, cancel := e.get("a-admin", tc.query, tc.header)
		var body struct{ Code, Field string }
		err := json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		cancel()
		if err != nil || resp.StatusCode != http.StatusBadRequest || body.Code != string(apperr.Invalid) || body.Field != tc.field {
			t.Errorf("%v %v: %s %+v (%v), want 400 invalid naming %s", tc.query, tc.header, resp.Status, body, err, tc.field)
		}
	}
}

// TestMaxClientsAndStop: one stream more than MaxClients is refused as
// unavailable with Retry-After; Stop ends every stream, and later ones are
// refused.
func TestMaxClientsAndStop(t *testing.T) {
	e := newEnv(t, liveevents.Config{MaxClients: 2})
	c1, c2 := e.connect("a-admin", nil, nil), e.connect("b-admin", nil, nil)
	resp, cancel := e.get("a-admin", nil, nil)
	resp.Body.Close()
	cancel()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third stream: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
	}
	if n := e.hub.Clients(); n != 2 {
		t.Errorf("%d clients, want 2", n)
	}
	e.flipGateway(e.a, 1)
	c1.events(1)
	if got := e.metric("dashboard_live_clients"); got != 2 {
		t.Errorf("clients gauge %v, want 2", got)
	}
	// The counter moves once the write has returned, which may be just
	// after the client has read the event.
	for deadline := time.Now().Add(5 * time.Second); e.metric("dashboard_live_events_sent_total") != 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.metric("dashboard_live_events_sent_total"); got != 1 {
		t.Errorf("events sent %v, want 1", got)
	}
	ctx, cancelStop := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancelStop()
	if err := e.hub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{c1, c2} {
		select {
		case <-c.done:
		case <-time.After(arrive):
			t.Fatal("a stream outlived Stop")
		}
	}
	resp, cancel = e.get("a-admin", nil, nil)
	resp.Body.Close()
	cancel()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Stop: %s, want 503", resp.Status)
	}
}

// metric is the sum of the values of the metric name (0 when absent).
func (e *env) metric(name string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestPrune deletes what is older than 24 hours, and only that.
func TestPrune(t *testing.T) {
	e := newEnv(t, liveevents.Config{})
	e.exec(`UPDATE dashboard_events SET created_at = now() - interval '25 hours'`)
	var old int
	if err := e.admin.QueryRow(e.ctx, `SELECT count(*) FROM dashboard_events`).Scan(&old); err != nil {
		t.Fatal(err)
	}
	e.flipGateway(e.a, 1)
	n, err := e.hub.Prune(e.ctx)
	if err != nil || n != old {
		t.Fatalf("Prune: %d, %v; want %d", n, err, old)
	}
	var left int
	if err := e.admin.QueryRow(e.ctx, `SELECT count(*) FROM dashboard_events`).Scan(&left); err != nil || left != 1 {
		t.Fatalf("%d left (%v), want 1", left, err)
	}
}

// TestHubKeepsTheLifecycleContract (lifecycletest.Conformance).
func TestHubKeepsTheLifecycleContract(t *testing.T) {
	db := pg.NewDatabase(t)
	pool := pg.Pool(t, db.DashboardURL, 4)
	lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
		return liveevents.New(liveevents.Config{}, liveevents.Deps{DB: pool, Logger: logtest.New(t)})
	})
}

// TestStartWithoutPool: Start refuses a hub without a pool.
func TestStartWithoutPool(t *testing.T) {
	if err := liveevents.New(liveevents.Config{}, liveevents.Deps{}).Start(context.Background()); err == nil || !strings.Contains(err.Error(), "pool") {
		t.Errorf("Start: %v", errors.Unwrap(err))
	}
}
