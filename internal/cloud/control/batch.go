package control

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control/controldb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// The hub's group commit. When many gateways talk at once (a release's
// claims and acknowledgements, 333 heartbeats/s at 10,000 gateways), one
// transaction per message queues them all on the replica's pool and on
// PostgreSQL's WAL flush. Instead each message waits in a group: the first
// caller to find fewer than maxActive flushes running becomes a flusher and
// writes everything queued (up to maxBatch) in one transaction per
// organisation, with one statement per kind of change (unnest arrays), then
// answers every caller of the batch — after the commit, so an
// acknowledgement is confirmed only once it is durable. Whatever arrives
// during a flush forms the next batch, so a lone message waits for no
// timer and a burst is written in a few transactions. Each connection has
// at most one message in the groups at a time (its read loop waits for the
// answer), so one gateway's messages are written in the order it sent
// them. Up to groupFlushes flushes of each group run at once (a commit
// that changes a command's status no longer waits for the dashboard
// events' lock, 00035, so status-changing commits of different batches
// flush their WAL together; claims take FOR UPDATE SKIP LOCKED, and a
// connection claims one batch at a time). When a batch's transaction fails, its messages are written one at a
// time, each in its own transaction, as before batching: one message the
// database refuses gets its own error frame and the others commit.

// item is what a group holds: a request whose answer is ready when done is
// closed.
type item interface{ doneCh() chan struct{} }

// group batches the requests of concurrent callers (see above).
type group[T item] struct {
	maxActive int // flushes at once
	maxBatch  int // requests per flush
	flush     func(context.Context, []T)

	mu     sync.Mutex
	queue  []T
	active int
}

// do queues it and returns when a flush has answered it.
func (g *group[T]) do(ctx context.Context, it T) {
	g.mu.Lock()
	g.queue = append(g.queue, it)
	if g.active >= g.maxActive {
		g.mu.Unlock()
		<-it.doneCh()
		return
	}
	g.active++
	for len(g.queue) > 0 {
		// Once its own request is answered a flusher leaves the rest to
		// another one running, if any (decided under the lock, so the last
		// one always drains the queue).
		if isDone(it) && g.active > 1 {
			break
		}
		n := min(len(g.queue), g.maxBatch)
		batch := make([]T, n)
		copy(batch, g.queue)
		clear(g.queue[:n])
		g.queue = g.queue[n:]
		if len(g.queue) == 0 {
			g.queue = nil
		}
		g.mu.Unlock()
		g.run(ctx, batch)
		g.mu.Lock()
	}
	g.active--
	g.mu.Unlock()
	<-it.doneCh()
}

// run flushes a batch on a goroutine of its own (so the deep stack of the
// database calls is not left on a connection's long-lived reader) and
// answers its requests.
func (g *group[T]) run(ctx context.Context, batch []T) {
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		g.flush(context.WithoutCancel(ctx), batch)
	}()
	<-finished
	for _, it := range batch {
		close(it.doneCh())
	}
}

func isDone(it item) bool {
	select {
	case <-it.doneCh():
		return true
	default:
		return false
	}
}

// inbound is one message a gateway sent that the database must record: a
// heartbeat (hb), a connect (touch without a heartbeat) or an
// acknowledgement (ack).
type inbound struct {
	gw    auth.Gateway
	touch bool
	hb    *protocol.Heartbeat
	ack   *protocol.CommandAck
	cmd   uuid.UUID // ack's command id, parsed
	err   error     // the answer
	done  chan struct{}
}

func (in *inbound) doneCh() chan struct{} { return in.done }

// record writes a heartbeat or connect (hb nil) through the inbound group.
func (h *Hub) record(ctx context.Context, gw auth.Gateway, hb *protocol.Heartbeat) error {
	in := &inbound{gw: gw, touch: true, hb: hb, done: make(chan struct{})}
	h.inbound.do(ctx, in)
	return in.err
}

// recordAck applies an acknowledgement — received through the inbound
// group, completed and failed through the finish group — and answers as
// ack does.
func (h *Hub) recordAck(ctx context.Context, gw auth.Gateway, a protocol.CommandAck) error {
	id, err := uuid.Parse(a.CommandID)
	if err != nil {
		return fmt.Errorf("command_id: not a UUID")
	}
	switch a.Phase {
	case protocol.AckReceived, protocol.AckCompleted, protocol.AckFailed:
	default:
		return fmt.Errorf("phase: want received, completed or failed")
	}
	ctx, end := h.traceResult(ctx, gw, a)
	defer end()
	in := &inbound{gw: gw, ack: &a, cmd: id, done: make(chan struct{})}
	if a.Phase == protocol.AckReceived {
		h.inbound.do(ctx, in)
	} else {
		h.finishes.do(ctx, in)
	}
	return in.err
}

// flushInbound returns the flush of a group of inbound messages, which
// writes a batch: per organisation, the first message of each gateway in
// one transaction; a gateway's later messages of the batch (a replaced
// connection's, say) one at a time after it, in order.
func (h *Hub) flushInbound(name string) func(context.Context, []*inbound) {
	return func(ctx context.Context, batch []*inbound) {
		h.writeInbound(ctx, batch)
		h.batches.WithLabelValues(name).Observe(float64(len(batch)))
	}
}

func (h *Hub) writeInbound(ctx context.Context, batch []*inbound) {
	byOrg := map[int64][]*inbound{}
	var orgs []int64
	for _, in := range batch {
		if _, ok := byOrg[in.gw.OrganizationID]; !ok {
			orgs = append(orgs, in.gw.OrganizationID)
		}
		byOrg[in.gw.OrganizationID] = append(byOrg[in.gw.OrganizationID], in)
	}
	for _, org := range orgs {
		var set, later []*inbound
		seen := map[uuid.UUID]bool{}
		for _, in := range byOrg[org] {
			if seen[in.gw.ID] {
				later = append(later, in)
				continue
			}
			seen[in.gw.ID] = true
			set = append(set, in)
		}
		h.inboundSet(ctx, org, set)
		for _, in := range later {
			h.one(ctx, in)
		}
	}
}

// one writes a message in a transaction of its own (the path before
// batching, and the fallback).
func (h *Hub) one(ctx context.Context, in *inbound) {
	if in.ack != nil {
		in.err = h.ack(ctx, in.gw, *in.ack)
		return
	}
	in.err = h.touch(ctx, in.gw, in.hb)
}

// inboundSet writes one organisation's messages, one per gateway, in one
// transaction; when it fails, each message one at a time.
func (h *Hub) inboundSet(ctx context.Context, org int64, set []*inbound) {
	if len(set) == 1 {
		h.one(ctx, set[0])
		return
	}
	var recorded []bool
	var acks []*inbound
	err := postgres.InTenant(ctx, h.db, postgres.Tenant{OrganizationID: org}, func(tx pgx.Tx) error {
		q := controldb.New(tx)
		var mo controldb.MarkOnlineManyParams
		snap := controldb.InsertSnapshotsParams{OrganizationID: org}
		var list []commandqueue.Ack
		acks = acks[:0]
		for _, in := range set {
			if in.ack != nil {
				acks = append(acks, in)
				list = append(list, commandqueue.Ack{GatewayID: in.gw.ID, ID: in.cmd, Phase: in.ack.Phase, Result: in.ack.Result, Error: in.ack.Error})
				continue
			}
			version := ""
			if in.hb != nil {
				version = in.hb.Versions["gateway"]
			}
			mo.Ids, mo.Versions = append(mo.Ids, in.gw.ID), append(mo.Versions, version)
			hb := in.hb
			if hb == nil {
				continue
			}
			if err := deviceStatus(ctx, q, in.gw, hb); err != nil {
				return err
			}
			versions, _ := json.Marshal(hb.Versions)
			snap.GatewayIds = append(snap.GatewayIds, in.gw.ID)
			snap.CpuUsages = append(snap.CpuUsages, clampPct(hb.CPUPercent))
			snap.MemoryUsages = append(snap.MemoryUsages, clampPct(hb.MemoryPercent))
			snap.DiskUsages = append(snap.DiskUsages, clampPct(hb.DiskPercent))
			snap.BufferUsages = append(snap.BufferUsages, clampPct(hb.BufferUsage*100))
			snap.QueueDepths = append(snap.QueueDepths, int64(hb.QueueDepth))
			snap.ConnectedAgents = append(snap.ConnectedAgents, int64(hb.ConnectedAgents))
			snap.Versions = append(snap.Versions, versions)
		}
		if len(mo.Ids) > 0 {
			if err := q.MarkOnlineMany(ctx, mo); err != nil {
				return fmt.Errorf("mark online: %w", err)
			}
		}
		if len(snap.GatewayIds) > 0 {
			if err := q.InsertSnapshots(ctx, snap); err != nil {
				return fmt.Errorf("insert snapshots: %w", err)
			}
		}
		if len(list) > 0 {
			var err error
			if recorded, err = h.queue.AckManyTx(ctx, tx, list); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			h.logger.WarnContext(ctx, "batched control messages failed; writing them one at a time", "messages", len(set), "err", err)
		}
		h.batchFallbacks.Inc()
		for _, in := range set {
			h.one(ctx, in)
		}
		return
	}
	// Acknowledgements the set-based statements did not change (late,
	// repeated, another gateway's) are answered as one at a time.
	for i, in := range acks {
		if !recorded[i] {
			h.one(ctx, in)
		}
	}
}

// claimReq is one connection's claim.
type claimReq struct {
	gw   auth.Gateway
	cmds []commandqueue.Command
	err  error
	done chan struct{}
}

func (c *claimReq) doneCh() chan struct{} { return c.done }

// flushClaims claims for a batch of gateways, one statement per
// organisation.
func (h *Hub) flushClaims(ctx context.Context, batch []*claimReq) {
	byOrg := map[int64][]*claimReq{}
	for _, c := range batch {
		byOrg[c.gw.OrganizationID] = append(byOrg[c.gw.OrganizationID], c)
	}
	for org, reqs := range byOrg {
		ids := make([]uuid.UUID, len(reqs))
		for i, c := range reqs {
			ids[i] = c.gw.ID
		}
		got, err := h.queue.ClaimMany(ctx, postgres.Tenant{OrganizationID: org}, ids, h.opts.ClaimBatch)
		// A gateway listed twice (a replaced connection's claim beside the
		// new one's) gets its commands once.
		for _, c := range reqs {
			c.err = err
			if err == nil {
				c.cmds = got[c.gw.ID]
				delete(got, c.gw.ID)
			}
		}
	}
	h.batches.WithLabelValues("claim").Observe(float64(len(batch)))
}

// claim claims due commands for a gateway (through the claim group) and
// converts them for the wire.
func (h *Hub) claim(ctx context.Context, gw auth.Gateway) ([]protocol.Command, error) {
	req := &claimReq{gw: gw, done: make(chan struct{})}
	h.claims.do(ctx, req)
	if req.err != nil {
		return nil, req.err
	}
	out := make([]protocol.Command, len(req.cmds))
	for i, c := range req.cmds {
		out[i] = protocol.Command{ID: c.ID.String(), Type: c.Type, Payload: c.Payload, Priority: c.Priority, Attempt: c.Attempts, ExpiresAt: c.ExpiresAt,
			TraceParent: c.TraceParent}
		h.latency.Observe(time.Since(c.CreatedAt).Seconds())
	}
	return out, nil
}
