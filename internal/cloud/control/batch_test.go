package control_test

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
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// batchWorld is n gateways of organisation A, each with one delivered
// command, and a hub (not serving: the tests call its batched paths as a
// socket's reader does).
type batchWorld struct {
	*world
	hub  *control.Hub
	reg  *prometheus.Registry
	gws  []auth.Gateway
	cmds []uuid.UUID // cmds[i] is gws[i]'s delivered command
}

func newBatchWorld(t *testing.T, n int) *batchWorld {
	t.Helper()
	ctx := context.Background()
	w := newWorld(t)
	fleet := w.copyGateways(ctx, n-1)
	reg := prometheus.NewRegistry()
	q, err := commandqueue.New(w.ingest, commandqueue.Options{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	bw := &batchWorld{world: w, reg: reg, hub: control.New(w.ingest, auth.NewGateways(w.ingest), q, logtest.New(t), reg, control.Options{})}
	ids := make([]uuid.UUID, len(fleet))
	for i, g := range fleet {
		ids[i] = uuid.MustParse(g.ID)
		bw.gws = append(bw.gws, auth.Gateway{ID: ids[i], OrganizationID: w.a.org, Status: "online"})
		w.enq(gw{org: w.a.org, id: ids[i], tenant: w.a.tenant}, protocol.CommandRestartAgent, 0)
	}
	got, err := q.ClaimMany(ctx, postgres.Tenant{OrganizationID: w.a.org}, ids, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if len(got[id]) != 1 {
			t.Fatalf("gateway %s: claimed %d commands, want 1", id, len(got[id]))
		}
		bw.cmds = append(bw.cmds, got[id][0].ID)
	}
	return bw
}

// batches returns how many batches the hub wrote and how many messages
// they held (control_batch_size), and how many fell back to one message at
// a time.
func (bw *batchWorld) batches(groups ...string) (count, messages, fallbacks float64) {
	mfs, err := bw.reg.Gather()
	if err != nil {
		bw.t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "control_batch_size":
				for _, l := range m.GetLabel() {
					if l.GetName() == "group" && slices.Contains(groups, l.GetValue()) {
						count += float64(m.GetHistogram().GetSampleCount())
						messages += m.GetHistogram().GetSampleSum()
					}
				}
			case "control_batch_fallbacks_total":
				fallbacks = m.GetCounter().GetValue()
			}
		}
	}
	return count, messages, fallbacks
}

// all runs f for every gateway at once (started together) and returns
// their errors.
func (bw *batchWorld) all(f func(i int) error) []error {
	errs := make([]error, len(bw.gws))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range bw.gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// An acknowledgement is answered only once it is durable: the moment
// RecordAck returns nil, another connection sees it. Many gateways
// acknowledging at once share transactions.
func TestBatchedAckIsDurableBeforeItIsConfirmed(t *testing.T) {
	t.Parallel()
	const n = 200
	bw := newBatchWorld(t, n)
	ctx := context.Background()
	check, err := postgres.Connect(ctx, bw.db.AdminURL, 1, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	for _, phase := range []string{protocol.AckReceived, protocol.AckCompleted} {
		errs := bw.all(func(i int) error {
			a := protocol.CommandAck{CommandID: bw.cmds[i].String(), Phase: phase, Result: json.RawMessage(`{"i":` + fmt.Sprint(i) + `}`)}
			if err := control.RecordAck(bw.hub, ctx, bw.gws[i], a); err != nil {
				return err
			}
			var received bool
			var status string
			if err := check.QueryRow(ctx, `SELECT received_at IS NOT NULL, status FROM gateway_commands WHERE id = $1`, bw.cmds[i]).Scan(&received, &status); err != nil {
				return err
			}
			want := commandqueue.StatusDelivered
			if phase == protocol.AckCompleted {
				want = commandqueue.StatusCompleted
			}
			if !received || status != want {
				return fmt.Errorf("confirmed %s ack of %s, but the database has received=%v status=%s", phase, bw.cmds[i], received, status)
			}
			return nil
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	count, messages, fallbacks := bw.batches("inbound", "finish")
	if messages != 2*n || count >= messages || fallbacks != 0 {
		t.Fatalf("%v messages in %v batches (%v fallbacks): want %d in fewer batches than messages, none falling back", messages, count, fallbacks, 2*n)
	}
	t.Logf("%v acknowledgements in %v transactions", messages, count)
}

// One acknowledgement the database refuses (a number beyond PostgreSQL's
// numeric range in its result) fails its batch; the batch is then written
// one message at a time: that acknowledgement gets the database's refusal,
// every other one commits.
func TestBatchedAckPoisonIsolated(t *testing.T) {
	t.Parallel()
	const n = 100
	bw := newBatchWorld(t, n)
	ctx := context.Background()
	const bad = 37
	for round := range 3 {
		errs := bw.all(func(i int) error {
			phase, result := protocol.AckReceived, json.RawMessage(nil)
			if round > 0 {
				phase, result = protocol.AckCompleted, json.RawMessage(`{"ok":true}`)
			}
			if i == bad && round == 1 {
				result = json.RawMessage(`{"x":1e1000000}`)
			}
			return control.RecordAck(bw.hub, ctx, bw.gws[i], protocol.CommandAck{CommandID: bw.cmds[i].String(), Phase: phase, Result: result})
		})
		for i, err := range errs {
			var pe *pgconn.PgError
			switch {
			case i == bad && round == 1:
				if !errors.As(err, &pe) || pe.Code != "22003" {
					t.Fatalf("round %d: the poisoned ack answered %v, want the database's numeric overflow (22003)", round, err)
				}
			case err != nil:
				t.Fatalf("round %d: gateway %d's ack failed beside the poisoned one: %v", round, i, err)
			}
		}
		if round == 1 {
			for i, id := range bw.cmds {
				want := commandqueue.StatusCompleted
				if i == bad {
					want = commandqueue.StatusDelivered
				}
				if s := bw.status(id.String()); s != want {
					t.Fatalf("command %d: status %s, want %s", i, s, want)
				}
			}
			if _, _, fallbacks := bw.batches("finish"); fallbacks < 1 {
				t.Fatal("the poisoned ack's batch did not fall back to one message at a time: it was never batched with others")
			}
		}
	}
	// Round 2 completed the poisoned gateway's command with a good result.
	if s := bw.status(bw.cmds[bad].String()); s != commandqueue.StatusCompleted {
		t.Fatalf("the poisoned gateway's command after a good ack: %s", s)
	}
}

// A gateway's messages are written in the order it sent them, also when
// many gateways' messages share transactions: each gateway sends
// "failed", then "completed", for each of its commands, without waiting;
// the first finish wins, so every command must end failed.
func TestBatchedAcksKeepEachGatewaysOrder(t *testing.T) {
	t.Parallel()
	const gateways, perGateway = 20, 10
	w := newWorld(t)
	ctx := context.Background()
	fleet := w.copyGateways(ctx, gateways-1)
	r := w.replica(control.Options{ClaimBatch: perGateway}, commandqueue.Options{})
	var clients []*client
	for _, g := range fleet {
		c, _, err := r.dial(t, g.Key)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.next(protocol.MsgWelcome, 10*time.Second); !ok {
			t.Fatal("no welcome")
		}
		clients = append(clients, c)
	}
	var ids []string
	for _, g := range fleet {
		for range perGateway {
			ids = append(ids, w.enq(gw{org: w.a.org, id: uuid.MustParse(g.ID), tenant: w.a.tenant}, protocol.CommandRestartAgent, 0).ID.String())
		}
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perGateway {
				cmd, ok := c.command(20 * time.Second)
				if !ok {
					t.Error("a command did not arrive")
					return
				}
				c.send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckFailed, Error: "first"})
				c.send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckCompleted})
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, id := range ids {
		for w.status(id) == commandqueue.StatusDelivered && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if s := w.status(id); s != commandqueue.StatusFailed {
			t.Fatalf("command %s: %s, want failed (the gateway's first finish)", id, s)
		}
	}
}

// Heartbeats of many gateways at once share transactions and each lands.
func TestBatchedHeartbeats(t *testing.T) {
	t.Parallel()
	const n = 100
	bw := newBatchWorld(t, n)
	ctx := context.Background()
	errs := bw.all(func(i int) error {
		return control.RecordHeartbeat(bw.hub, ctx, bw.gws[i], protocol.Heartbeat{CPUPercent: float64(i % 100), QueueDepth: i,
			Versions: map[string]string{"gateway": fmt.Sprintf("1.0.%d", i)}})
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, g := range bw.gws {
		var version string
		var depth int
		if err := bw.admin.QueryRow(ctx, `SELECT g.version, s.queue_depth FROM gateway_instances g JOIN gateway_status_snapshots s ON s.gateway_id = g.id
			WHERE g.id = $1 AND g.status = 'online'`, g.ID).Scan(&version, &depth); err != nil {
			t.Fatalf("gateway %d: %v", i, err)
		}
		if version != fmt.Sprintf("1.0.%d", i) || depth != i {
			t.Fatalf("gateway %d: version %s, queue depth %d", i, version, depth)
		}
	}
	if count, messages, _ := bw.batches("inbound"); messages != n || count >= messages {
		t.Fatalf("%v heartbeats in %v batches", messages, count)
	}
}
