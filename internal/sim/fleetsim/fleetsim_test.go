package fleetsim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/fleetsim"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

func TestReadGateways(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []fleetsim.Gateway
		err      bool
	}{
		{name: "pairs", in: "a k1\nb\tk2\n", want: []fleetsim.Gateway{{ID: "a", Key: "k1"}, {ID: "b", Key: "k2"}}},
		{name: "comments and blanks", in: "# id key\n\n  a k1  \n", want: []fleetsim.Gateway{{ID: "a", Key: "k1"}}},
		{name: "empty", in: "", want: nil},
		{name: "missing key", in: "a\n", err: true},
		{name: "extra field", in: "a k1 x\n", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fleetsim.ReadGateways(strings.NewReader(tc.in))
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewRefusesABaseURLWithoutHTTPScheme(t *testing.T) {
	if _, err := fleetsim.New(fleetsim.Options{BaseURL: "127.0.0.1:8080"}); err == nil {
		t.Fatal("want an error")
	}
}

// cloud is a database with one organisation and its gateways, and one
// Agent API on it.
type cloud struct {
	admin  *pgx.Conn
	ingest *pgxpool.Pool
	dash   *pgxpool.Pool
	org    int64
	gws    []fleetsim.Gateway
	url    string
}

func newCloud(t *testing.T, n int) *cloud {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	c := &cloud{}
	var err error
	if c.admin, err = pgx.Connect(ctx, db.AdminURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.admin.Close(context.Background()) })
	if c.ingest, err = postgres.Connect(ctx, db.IngestURL, 8, pg.ContextKey()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.ingest.Close)
	if c.dash, err = postgres.Connect(ctx, db.DashboardURL, 4, pg.ContextKey()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.dash.Close)
	if err := c.admin.QueryRow(ctx, `INSERT INTO organizations (name, slug) VALUES ('Fleet', $1) RETURNING id`, "fleet-"+uuid.NewString()[:8]).Scan(&c.org); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		key, hash, err := auth.NewSecret(auth.PrefixAPIKey)
		if err != nil {
			t.Fatal(err)
		}
		var id uuid.UUID
		if err := c.admin.QueryRow(ctx, `INSERT INTO gateway_instances (organization_id, serial, api_key_hash, status) VALUES ($1, $2, $3, 'offline') RETURNING id`,
			c.org, fmt.Sprintf("SIM-%03d", i), hash).Scan(&id); err != nil {
			t.Fatal(err)
		}
		c.gws = append(c.gws, fleetsim.Gateway{ID: id.String(), Key: key})
	}

	api := agentapitest.Start(t, c.ingest, agentapitest.Options{})
	c.url = api.URL
	return c
}

func (c *cloud) tenant() postgres.Tenant {
	return postgres.Tenant{OrganizationID: c.org, Role: postgres.AppOrgAdmin}
}

// until polls cond every 20 ms for at most d.
func until(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func (c *cloud) commandStatus(t *testing.T, id uuid.UUID) (status string, result []byte, errMsg string) {
	t.Helper()
	var e *string
	if err := c.admin.QueryRow(context.Background(), `SELECT status, result, error FROM gateway_commands WHERE id = $1`, id).Scan(&status, &result, &e); err != nil {
		t.Fatal(err)
	}
	if e != nil {
		errMsg = *e
	}
	return status, result, errMsg
}

// TestFleetAgainstARealAgentAPI connects a small fleet to a real hub,
// distributes a policy to it, checks that a replaced socket comes back, that
// a redelivered command is answered from the ledger without running again,
// and that a checksum mismatch is acknowledged failed.
func TestFleetAgainstARealAgentAPI(t *testing.T) {
	t.Parallel()
	const n = 20
	ctx := context.Background()
	c := newCloud(t, n)
	ready := make(chan struct{})
	f, err := fleetsim.New(fleetsim.Options{BaseURL: c.url, Gateways: c.gws, BackoffInitial: 100 * time.Millisecond,
		BackoffMax: time.Second, OnReady: func() { close(ready) }, Logger: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	fctx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { f.Run(fctx); close(ran) }()
	defer func() {
		stop()
		select {
		case <-ran:
		case <-time.After(30 * time.Second):
			t.Error("the fleet did not stop within 30 s")
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("not every gateway welcomed within 60 s: %+v", f.Stats())
	}
	online := func() int {
		var k int
		_ = c.admin.QueryRow(ctx, `SELECT count(*) FROM gateway_instances WHERE organization_id = $1 AND status = 'online'`, c.org).Scan(&k)
		return k
	}
	if !until(10*time.Second, func() bool { return online() == n }) {
		t.Fatalf("%d of %d gateways online", online(), n)
	}

	// A policy release reaches every gateway.
	actor := accounts.Actor{Name: "hr", Tenant: c.tenant()}
	psvc, err := policy.New(c.dash)
	if err != nil {
		t.Fatal(err)
	}
	p, err := psvc.Create(ctx, actor, "Sim", []byte(`{"screenshots":{"enabled":true,"interval_seconds":300}}`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := psvc.Release(ctx, actor, p.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	dashQueue, err := commandqueue.New(c.dash, commandqueue.Options{}, service.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	dist := policy.NewDistributor(c.dash, dashQueue)
	distID, err := dist.Distribute(ctx, actor, p.ID, v.Version, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var prog policy.Progress
	if !until(60*time.Second, func() bool {
		prog, err = dist.Progress(ctx, c.tenant(), distID)
		return err == nil && prog.Applied == n
	}) {
		t.Fatalf("progress %d of %d applied (failed %d), err %v; fleet %+v", prog.Applied, n, prog.Failed, err, f.Stats())
	}
	if got := f.Versions(); got[v.Version] != n {
		t.Fatalf("versions %v, want all %d at %s", got, n, v.Version)
	}
	var wrong int
	if err := c.admin.QueryRow(ctx, `SELECT count(*) FROM gateway_commands WHERE organization_id = $1 AND type = 'policy_update'
		AND result->>'applied_version' IS DISTINCT FROM $2`, c.org, v.Version).Scan(&wrong); err != nil || wrong != 0 {
		t.Fatalf("%d policy_update results without applied_version %s (err %v)", wrong, v.Version, err)
	}

	// A newer socket for one gateway replaces the simulated one; when it
	// goes away, the simulator reconnects.
	before := f.Stats().Sessions
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(c.url, "http")+protocol.PathGatewaySocket,
		http.Header{protocol.HeaderAPIKey: {c.gws[0].Key}})
	if err != nil {
		t.Fatal(err)
	}
	if !until(10*time.Second, func() bool { return f.Stats().Sessions > before }) {
		ws.Close()
		t.Fatalf("no reconnect after replacement: %+v", f.Stats())
	}
	ws.Close()
	if !until(20*time.Second, func() bool { return f.Stats().Connected == n }) {
		t.Fatalf("not all connected again: %+v", f.Stats())
	}

	// A command runs once; a redelivery is answered from the ledger.
	cmd, err := dashQueue.Enqueue(ctx, c.tenant(), commandqueue.NewCommand{GatewayID: uuid.MustParse(c.gws[1].ID), Type: protocol.CommandRestartAgent,
		Payload: json.RawMessage(`{"agent":"all","mode":"graceful"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if !until(10*time.Second, func() bool { s, _, _ := c.commandStatus(t, cmd.ID); return s == commandqueue.StatusCompleted }) {
		t.Fatal("restart_agent not completed")
	}
	dups := f.Stats().Duplicates
	if _, err := c.admin.Exec(ctx, `UPDATE gateway_commands SET status = 'pending', completed_at = NULL WHERE id = $1`, cmd.ID); err != nil {
		t.Fatal(err)
	}
	if !until(10*time.Second, func() bool { s, _, _ := c.commandStatus(t, cmd.ID); return s == commandqueue.StatusCompleted }) {
		t.Fatal("redelivered restart_agent not completed")
	}
	if got := f.Stats().Duplicates; got != dups+1 {
		t.Fatalf("duplicates %d, want %d", got, dups+1)
	}

	// A policy_update whose checksum does not match the content fails.
	bad, _ := json.Marshal(map[string]any{"policy_id": p.ID, "version": v.Version, "checksum": strings.Repeat("0", 64)})
	cmd, err = dashQueue.Enqueue(ctx, c.tenant(), commandqueue.NewCommand{GatewayID: uuid.MustParse(c.gws[2].ID), Type: protocol.CommandPolicyUpdate, Payload: bad})
	if err != nil {
		t.Fatal(err)
	}
	if !until(10*time.Second, func() bool { s, _, _ := c.commandStatus(t, cmd.ID); return s == commandqueue.StatusFailed }) {
		t.Fatal("policy_update with a wrong checksum not failed")
	}
	if _, _, msg := c.commandStatus(t, cmd.ID); !strings.Contains(msg, "checksum") {
		t.Fatalf("error %q, want it to name the checksum", msg)
	}
	stop()
	<-ran
	if s := f.Stats(); s.Connected != 0 || s.Applied != n || s.Failed != 1 {
		t.Fatalf("stats after stop %+v", s)
	}
}
