package commandqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// groupQueue is a queue over the fixture's dashboard pool with its own
// registry, so that a test can read the group commit's metrics.
func groupQueue(t *testing.T, f *fixture, opts commandqueue.Options) (*commandqueue.Queue, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	q, err := commandqueue.New(f.dash, opts, reg)
	if err != nil {
		t.Fatal(err)
	}
	return q, reg
}

// batchStats reads how many group-committed transactions ran, how many
// commands they held and how many batches were retried one by one.
func batchStats(t *testing.T, reg *prometheus.Registry) (batches, commands uint64, retries float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "commands_enqueue_batch_size":
			h := mf.GetMetric()[0].GetHistogram()
			batches, commands = h.GetSampleCount(), uint64(h.GetSampleSum())
		case "commands_enqueue_batch_retries_total":
			retries = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return batches, commands, retries
}

// addGateway registers another gateway of org (status online).
func addGateway(t *testing.T, f *fixture, org int64, serial string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if err := f.admin.QueryRow(context.Background(), `INSERT INTO gateway_instances (organization_id, serial, api_key_hash, status)
		VALUES ($1, $2, sha256(convert_to($2, 'UTF8')), 'online') RETURNING id`, org, serial).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestEnqueueGroupCommit: many concurrent calls of two organisations share
// transactions, and each still gets its own answer: every accepted command
// is stored once, in its own organisation, with its caller's trace; a
// command for another organisation's gateway answers ErrNotFound to its
// caller only; an invalid one is refused before it joins a batch; and a
// command PostgreSQL refuses (a payload jsonb cannot hold) fails alone —
// its batch is retried one command at a time.
func TestEnqueueGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commandqueue.Options{})
	q, reg := groupQueue(t, f, commandqueue.Options{})
	gwsA := []uuid.UUID{f.a.GatewayID, addGateway(t, f, f.a.OrganizationID, "group-a1"), addGateway(t, f, f.a.OrganizationID, "group-a2")}
	gwsB := []uuid.UUID{f.b.GatewayID, addGateway(t, f, f.b.OrganizationID, "group-b1")}

	type call struct {
		tenant  postgres.Tenant
		cmd     commandqueue.NewCommand
		trace   string
		wantErr string // "": accepted; "notfound"; "field:NAME"; "refused"
	}
	var calls []call
	const perOrg = 120
	for i := range perOrg {
		tp := fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)
		calls = append(calls,
			call{tenant: f.ta, cmd: commandqueue.NewCommand{GatewayID: gwsA[i%len(gwsA)], Type: protocol.CommandRestartAgent, Priority: i % 3,
				Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), CreatedBy: "alpha"}, trace: tp},
			call{tenant: f.tb, cmd: commandqueue.NewCommand{GatewayID: gwsB[i%len(gwsB)], Type: protocol.CommandPolicyUpdate,
				Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), CreatedBy: "beta"}})
		switch i % 40 {
		case 7: // beta names alpha's gateway: invisible to beta
			calls = append(calls, call{tenant: f.tb, cmd: commandqueue.NewCommand{GatewayID: gwsA[0], Type: protocol.CommandRestartAgent}, wantErr: "notfound"})
		case 19: // invalid: refused before batching
			calls = append(calls, call{tenant: f.ta, cmd: commandqueue.NewCommand{GatewayID: gwsA[0], Type: "format_disk"}, wantErr: "field:type"})
		case 29: // valid JSON that jsonb refuses: fails in the database
			calls = append(calls, call{tenant: f.ta, cmd: commandqueue.NewCommand{GatewayID: gwsA[1], Type: protocol.CommandRestartAgent,
				Payload: json.RawMessage(`{"x":"\u0000"}`)}, wantErr: "refused"})
		}
	}
	got := make([]commandqueue.Command, len(calls))
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			cctx := ctx
			if c.trace != "" {
				cctx = tracing.Extract(ctx, c.trace)
			}
			got[i], errs[i] = q.Enqueue(cctx, c.tenant, c.cmd)
		}()
	}
	close(start)
	wg.Wait()

	accepted := map[uuid.UUID]call{}
	for i, c := range calls {
		err := errs[i]
		var fe *apperr.FieldError
		switch {
		case c.wantErr == "" && err != nil:
			t.Fatalf("call %d: %v", i, err)
		case c.wantErr == "notfound" && !errors.Is(err, commandqueue.ErrNotFound):
			t.Fatalf("call %d (another organisation's gateway): %v, want ErrNotFound", i, err)
		case c.wantErr == "field:type" && (!errors.As(err, &fe) || fe.Field != "type"):
			t.Fatalf("call %d (bad type): %v", i, err)
		case c.wantErr == "refused" && (err == nil || errors.Is(err, commandqueue.ErrNotFound)):
			t.Fatalf("call %d (payload jsonb refuses): %v", i, err)
		}
		if c.wantErr == "" {
			if got[i].ID == uuid.Nil || got[i].GatewayID != c.cmd.GatewayID || got[i].Status != commandqueue.StatusPending || got[i].CreatedAt.IsZero() {
				t.Fatalf("call %d: answered %+v", i, got[i])
			}
			if _, dup := accepted[got[i].ID]; dup {
				t.Fatalf("id %s answered twice", got[i].ID)
			}
			accepted[got[i].ID] = c
		}
	}
	if len(accepted) != 2*perOrg {
		t.Fatalf("%d accepted, want %d", len(accepted), 2*perOrg)
	}

	// What the database holds: exactly the accepted commands, each once,
	// in its own organisation, with its payload, creator and trace.
	rows, err := f.admin.Query(ctx, `SELECT id, organization_id, gateway_id, payload::text, created_by, coalesce(trace_parent, '') FROM gateway_commands`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var id, gw uuid.UUID
		var org int64
		var payload, by, tp string
		if err := rows.Scan(&id, &org, &gw, &payload, &by, &tp); err != nil {
			t.Fatal(err)
		}
		n++
		c, ok := accepted[id]
		if !ok {
			t.Fatalf("stored command %s was not answered as accepted", id)
		}
		var p1, p2 any
		_ = json.Unmarshal([]byte(payload), &p1)
		_ = json.Unmarshal(c.cmd.Payload, &p2)
		if org != c.tenant.OrganizationID || gw != c.cmd.GatewayID || by != c.cmd.CreatedBy || tp != c.trace || fmt.Sprint(p1) != fmt.Sprint(p2) {
			t.Fatalf("stored %s: org %d gw %s payload %s by %q trace %q; want %+v", id, org, gw, payload, by, tp, c)
		}
	}
	if rows.Err() != nil || n != len(accepted) {
		t.Fatalf("%d rows stored, want %d (%v)", n, len(accepted), rows.Err())
	}

	batches, commands, retries := batchStats(t, reg)
	t.Logf("%d calls in %d transactions (%d commands committed), %v batches retried one by one", len(calls), batches, commands, retries)
	if batches == 0 || batches >= uint64(len(calls)) {
		t.Fatalf("%d transactions for %d concurrent calls: nothing was grouped", batches, len(calls))
	}
}

// TestEnqueueKeepsEachCallersOrder: a caller who enqueues one command after
// another for one gateway (each call answered before the next) gets them
// claimed in that order, while other callers' commands for the same gateway
// share the transactions; and the retry of a failed batch keeps the ids, so
// nothing is stored twice.
func TestEnqueueKeepsEachCallersOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commandqueue.Options{})
	q, _ := groupQueue(t, f, commandqueue.Options{GroupInFlight: 1, GroupMax: 16})
	gw := f.a.GatewayID
	const callers, each = 6, 15
	mine := make([][]uuid.UUID, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				cmd, err := q.Enqueue(ctx, f.ta, commandqueue.NewCommand{GatewayID: gw, Type: protocol.CommandRestartAgent,
					Payload: json.RawMessage(fmt.Sprintf(`{"caller":%d,"i":%d}`, c, i))})
				if err != nil {
					t.Error(err)
					return
				}
				mine[c] = append(mine[c], cmd.ID)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var order []uuid.UUID
	for {
		cs, err := f.q.Claim(ctx, f.ta, gw, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 {
			break
		}
		for _, c := range cs {
			order = append(order, c.ID)
		}
	}
	if len(order) != callers*each {
		t.Fatalf("claimed %d, want %d", len(order), callers*each)
	}
	pos := map[uuid.UUID]int{}
	for i, id := range order {
		pos[id] = i
	}
	for c, ids := range mine {
		for i := 1; i < len(ids); i++ {
			if pos[ids[i]] < pos[ids[i-1]] {
				t.Fatalf("caller %d: command %d claimed before command %d", c, i, i-1)
			}
		}
	}
}

// TestEnqueueNotifiesOncePerGatewayPerStatement: a multi-gateway batch wakes
// each of its gateways (00044's statement trigger), one notification per
// gateway however many commands it got; a command put back to pending (the
// sweep's redelivery) still wakes its gateway.
func TestEnqueueNotifiesOncePerGatewayPerStatement(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := newFixture(t, commandqueue.Options{})
	gws := []uuid.UUID{f.a.GatewayID, addGateway(t, f, f.a.OrganizationID, "notify-1"), addGateway(t, f, f.a.OrganizationID, "notify-2")}
	listener, err := pgx.Connect(ctx, f.admin.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.Background())
	if _, err := listener.Exec(ctx, `LISTEN gateway_commands`); err != nil {
		t.Fatal(err)
	}
	// Three commands for each gateway, in one statement.
	var all []uuid.UUID
	for _, g := range gws {
		all = append(all, g, g, g)
	}
	var first uuid.UUID
	if err := f.admin.QueryRow(ctx, `WITH ins AS (INSERT INTO gateway_commands (organization_id, gateway_id, type, payload)
		SELECT $1, g, 'restart_agent', '{}' FROM unnest($2::uuid[]) AS g RETURNING id, gateway_id)
		SELECT id FROM ins WHERE gateway_id = $3 LIMIT 1`, f.a.OrganizationID, all, gws[0]).Scan(&first); err != nil {
		t.Fatal(err)
	}
	count := func(want int) map[string]int {
		seen := map[string]int{}
		for n := 0; n < want; n++ {
			nctx, ncancel := context.WithTimeout(ctx, 5*time.Second)
			note, err := listener.WaitForNotification(nctx)
			ncancel()
			if err != nil {
				t.Fatalf("after %d notifications: %v", n, err)
			}
			seen[note.Payload]++
		}
		// Nothing more arrives.
		nctx, ncancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer ncancel()
		if note, err := listener.WaitForNotification(nctx); err == nil {
			t.Fatalf("an extra notification: %s", note.Payload)
		}
		return seen
	}
	seen := count(len(gws))
	for _, g := range gws {
		if seen[g.String()] != 1 {
			t.Fatalf("notifications per gateway: %v", seen)
		}
	}

	// The group commit's statement: nine commands, three gateways, one
	// transaction (GroupInFlight 1 and a first call holding it while the
	// others gather).
	q, reg := groupQueue(t, f, commandqueue.Options{GroupInFlight: 1})
	var wg sync.WaitGroup
	for _, g := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := q.Enqueue(ctx, f.ta, commandqueue.NewCommand{GatewayID: g, Type: protocol.CommandRestartAgent}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	batches, _, _ := batchStats(t, reg)
	// Each transaction notifies each of its gateways once.
	nctx, ncancel := context.WithTimeout(ctx, 2*time.Second)
	seen = map[string]int{}
	for {
		note, err := listener.WaitForNotification(nctx)
		if err != nil {
			break
		}
		seen[note.Payload]++
	}
	ncancel()
	total := 0
	for _, g := range gws {
		if seen[g.String()] == 0 || seen[g.String()] > int(batches) {
			t.Fatalf("gateway %s: %d notifications for %d transactions", g, seen[g.String()], batches)
		}
		total += seen[g.String()]
	}
	t.Logf("9 enqueues in %d transactions: %d notifications", batches, total)

	// A redelivery (status back to pending) wakes its gateway.
	if _, err := f.admin.Exec(ctx, `UPDATE gateway_commands SET status = 'delivered' WHERE id = $1`, first); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.Exec(ctx, `UPDATE gateway_commands SET status = 'pending' WHERE id = $1`, first); err != nil {
		t.Fatal(err)
	}
	seen = count(1)
	if !slices.Equal([]int{seen[gws[0].String()]}, []int{1}) {
		t.Fatalf("redelivery notifications: %v", seen)
	}
}

// TestEnqueueOfAGoneCallerIsNotStored: a call whose context has ended
// before its batch is taken answers the context's error and stores nothing,
// while the calls beside it are stored.
func TestEnqueueOfAGoneCallerIsNotStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commandqueue.Options{})
	q, _ := groupQueue(t, f, commandqueue.Options{})
	gone, cancel := context.WithCancel(ctx)
	cancel()
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ctx
			if i%2 == 1 {
				c = gone
			}
			_, errs[i] = q.Enqueue(c, f.ta, commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandRestartAgent,
				Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%2 == 1) != errors.Is(err, context.Canceled) || (i%2 == 0 && err != nil) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	rows, err := f.admin.Query(ctx, `SELECT (payload->>'i')::int FROM gateway_commands ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil || !slices.Equal(stored, []int{0, 2, 4, 6, 8}) {
		t.Fatalf("stored %v (%v), want the live callers' 0 2 4 6 8", stored, err)
	}
}
