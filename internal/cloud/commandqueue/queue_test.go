package commandqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

type fixture struct {
	admin  *pgx.Conn
	enq    *commandqueue.Queue // as the dashboard role (enqueues)
	q      *commandqueue.Queue // as the ingest role (the Agent API)
	a, b   pgtest.Seeded
	ta, tb postgres.Tenant
	// dash is the dashboard role's pool (the …Tx methods' transactions).
	dash *pgxpool.Pool
	// ingest is the ingest role's pool (the Agent API's).
	ingest *pgxpool.Pool
}

func newFixture(t *testing.T, opts commandqueue.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	f := &fixture{admin: admin}
	if f.a, err = pgtest.SeedOrganization(ctx, admin, "alpha"); err != nil {
		t.Fatal(err)
	}
	if f.b, err = pgtest.SeedOrganization(ctx, admin, "beta"); err != nil {
		t.Fatal(err)
	}
	// The seed puts one command in each queue; start from empty ones.
	if _, err := admin.Exec(ctx, `DELETE FROM gateway_commands`); err != nil {
		t.Fatal(err)
	}
	f.ta = postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppOrgAdmin}
	f.tb = postgres.Tenant{OrganizationID: f.b.OrganizationID, Role: postgres.AppOrgAdmin}
	for _, r := range []struct {
		url string
		dst **commandqueue.Queue
	}{{db.DashboardURL, &f.enq}, {db.IngestURL, &f.q}} {
		pool, err := postgres.Connect(ctx, r.url, 8, pg.ContextKey())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		if r.url == db.DashboardURL {
			f.dash = pool
		} else {
			f.ingest = pool
		}
		if *r.dst, err = commandqueue.New(pool, opts, prometheus.NewRegistry()); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestClaimsInPriorityOrderAndAcknowledgesInTwoPhases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commandqueue.Options{})
	var ids []uuid.UUID
	for _, p := range []int{0, 10, 5, 10} {
		c, err := f.enq.Enqueue(ctx, f.ta, commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandRestartAgent, Priority: p, Payload: json.RawMessage(`{"agent":"all"}`)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	got, err := f.q.Claim(ctx, f.ta, f.a.GatewayID, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []uuid.UUID{ids[1], ids[3], ids[2], ids[0]}
	if len(got) != 4 {
		t.Fatalf("claimed %d, want 4", len(got))
	}
	for i := range want {
		if got[i].ID != want[i] || got[i].Attempts != 1 {
			t.Errorf("claim[%d] = %s (attempt %d), want %s", i, got[i].ID, got[i].Attempts, want[i])
		}
	}
	if again, _ := f.q.Claim(ctx, f.ta, f.a.GatewayID, 10); len(again) != 0 {
		t.Fatalf("delivered commands claimed again: %d", len(again))
	}
	if err := f.q.Received(ctx, f.ta, f.a.GatewayID, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := f.q.Finish(ctx, f.ta, f.a.GatewayID, ids[1], true, json.RawMessage(`{"restarted":3}`), ""); err != nil {
		t.Fatal(err)
	}
	// A redelivered acknowledgement is harmless.
	if err := f.q.Finish(ctx, f.ta, f.a.GatewayID, ids[1], true, nil, ""); err != nil {
		t.Fatalf("repeated ack: %v", err)
	}
	if err := f.q.Finish(ctx, f.ta, f.a.GatewayID, ids[3], false, nil, "agent not found"); err != nil {
		t.Fatal(err)
	}
	c1, _ := f.enq.Get(ctx, f.ta, ids[1])
	c3, _ := f.enq.Get(ctx, f.ta, ids[3])
	if c1.Status != commandqueue.StatusCompleted || string(c1.Result) != `{"restarted": 3}` || c1.ReceivedAt == nil {
		t.Errorf("completed command: %+v", c1)
	}
	if c3.Status != commandqueue.StatusFailed || c3.Error == nil || *c3.Error != "agent not found" {
		t.Errorf("failed command: %+v", c3)
	}
}

func TestAnotherOrganisationsGatewayNeverGetsACommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commandqueue.Options{})
	// Organisation A cannot enqueue for B's gateway: it does not exist for A.
	if _, err := f.enq.Enqueue(ctx, f.ta, commandqueue.NewCommand{GatewayID: f.b.GatewayID, Type: protocol.CommandRestartAgent}); !errors.Is(err, commandqueue.ErrNotFound) {
		t.Fatalf("enqueue for another organisation's gateway: %v, want ErrNotFound", err)
	}
	c, err := f.enq.Enqueue(ctx, f.ta, commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandPolicyUpdate})
	if err != nil {
		t.Fatal(err)
	}
	// B's context claiming A's gateway, or B's gateway: nothing.
	for _, gw := range []uuid.UUID{f.a.GatewayID, f.b.GatewayID} {
		if got, err := f.q.Claim(ctx, f.tb, gw, 10); err != nil || len(got) != 0 {
			t.Fatalf("organisation B claimed %d commands (%v)", len(got), err)
		}
	}
	if err := f.q.Finish(ctx, f.tb, f.a.GatewayID, c.ID, true, nil, ""); !errors.Is(err, commandqueue.ErrNotFound) {
		t.Fatalf("B acknowledging A's command: %v, want ErrNotFound", err)
	}
	if _, err := f.enq.Get(ctx, f.tb, c.ID); !errors.Is(err, commandqueue.ErrNotFound) {
		t.Fatalf("B reading A's command: %v, want ErrNotFound", err)
	}
	bad := []struct {
		cmd   commandqueue.NewCommand
		field string
	}{
		{commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: "format_disk"}, "type"},
		{commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandRestartAgent, Payload: json.RawMessage(`[1]`)}, "payload"},
		{commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandRestartAgent, MaxAttempts: -1}, "max_attempts"},
		{commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandRestartAgent, TTL: time.Millisecond}, "ttl"},
		{commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandRotateAPIKey, Payload: json.RawMessage(`{"new_key":"sk_live_x"}`)}, "payload.new_key"},
		{commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandRotateAPIKey, Payload: json.RawMessage(`{"overlap_seconds":"1h"}`)}, "payload.overlap_seconds"},
	}
	for _, b := range bad {
		var fe *apperr.FieldError
		if _, err := f.enq.Enqueue(ctx, f.ta, b.cmd); !errors.As(err, &fe) || fe.Field != b.field {
			t.Errorf("%+v: %v, want a field error on %s", b.cmd, err, b.field)
		}
	}
}

func TestConcurrentClaimsNeverShareACommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commandqueue.Options{})
	const n = 300
	for i := 0; i < n; i++ {
		if _, err := f.enq.Enqueue(ctx, f.ta, commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandRestartAgent, Priority: i % 7}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[uuid.UUID]int{}
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := f.q.Claim(ctx, f.ta, f.a.GatewayID, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, c := range got {
					seen[c.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("claimed %d distinct commands, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("command %s claimed %d times", id, k)
		}
	}
}

func TestSweepRedeliversWithBackoffThenFailsAndExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commandqueue.Options{AckTimeout: time.Second, Backoff: 10 * time.Second})
	c, err := f.enq.Enqueue(ctx, f.ta, commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandRestartAgent, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	old, err := f.enq.Enqueue(ctx, f.ta, commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandRestartAgent, TTL: time.Second, Priority: -1})
	if err != nil {
		t.Fatal(err)
	}
	status := func(id uuid.UUID) commandqueue.Command {
		got, err := f.enq.Get(ctx, f.ta, id)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Attempt 1: delivered, never acknowledged.
	if got, _ := f.q.Claim(ctx, f.ta, f.a.GatewayID, 1); len(got) != 1 || got[0].ID != c.ID {
		t.Fatalf("first claim: %+v", got)
	}
	// The sweep reads the server's clock: age the data instead (the ack
	// deadline and the other command's expiry passed 2 s ago).
	age := func(sql string, id uuid.UUID) {
		t.Helper()
		if _, err := f.admin.Exec(ctx, sql, id); err != nil {
			t.Fatal(err)
		}
	}
	const lateAck = `UPDATE gateway_commands SET ack_deadline = now() - interval '2 seconds' WHERE id = $1 AND status = 'delivered'`
	age(lateAck, c.ID)
	age(`UPDATE gateway_commands SET expires_at = now() - interval '2 seconds' WHERE id = $1`, old.ID)
	if _, err := f.q.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if st := status(c.ID); st.Status != commandqueue.StatusPending {
		t.Fatalf("after a missed ack: %s, want pending", st.Status)
	}
	if st := status(old.ID); st.Status != commandqueue.StatusExpired {
		t.Fatalf("command past its expiry: %s, want expired", st.Status)
	}
	// Backoff: not due before 10 s have passed.
	if got, _ := f.q.Claim(ctx, f.ta, f.a.GatewayID, 1); len(got) != 0 {
		t.Fatalf("redelivered before its backoff: %+v", got)
	}
	if _, err := f.admin.Exec(ctx, `UPDATE gateway_commands SET next_attempt_at = now() WHERE id = $1`, c.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.q.Claim(ctx, f.ta, f.a.GatewayID, 1); len(got) != 1 || got[0].Attempts != 2 {
		t.Fatalf("second delivery: %+v", got)
	}
	age(lateAck, c.ID)
	if _, err := f.q.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if st := status(c.ID); st.Status != commandqueue.StatusFailed || st.Error == nil {
		t.Fatalf("after max attempts: %+v, want failed with an error", st)
	}
}

func TestListenWakesOnEnqueue(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, commandqueue.Options{})
	woke := make(chan uuid.UUID, 10)
	go f.q.Listen(ctx, func(id uuid.UUID) { woke <- id })
	time.Sleep(300 * time.Millisecond) // let LISTEN start
	if _, err := f.enq.Enqueue(ctx, f.ta, commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandPolicyUpdate}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-woke:
		if id != f.a.GatewayID {
			t.Fatalf("woke for %s, want %s", id, f.a.GatewayID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification within 5 s")
	}
}
