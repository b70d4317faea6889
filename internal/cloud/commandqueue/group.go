package commandqueue

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue/commandqueuedb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// Group commit of enqueues (issue 17, part 3). Every Enqueue used to be its
// own transaction, and their commits were serialised on PostgreSQL's NOTIFY
// queue lock (held through the commit's WAL flush): ~270 enqueues/s at most
// on this machine. Now concurrent Enqueue calls of one tenant are gathered
// into one transaction with one multi-row INSERT (EnqueueBatch), which sends
// one NOTIFY per gateway (00044's statement trigger). There is no timer:
// a batch is what arrived while the tenant's previous batches were being
// committed (at most Options.GroupInFlight of them at a time, each of at
// most Options.GroupMax commands), so a lone call goes at once and a busy
// tenant's calls share commits.
//
// Each call keeps its own answer: validation runs before a command joins a
// batch, a gateway the tenant cannot see (or revoked) answers ErrNotFound to
// its own caller only, and when a batch's statement or commit fails its
// commands are retried one by one, each answered with its own outcome. The
// command ids are chosen before the first attempt (UUIDv7, in arrival
// order), so a retry can never create a second copy of a command, and two
// commands of one gateway in one batch are claimed in the order they were
// enqueued (same created_at, then id).

// Defaults of the group commit.
const (
	defaultGroupMax      = 128
	defaultGroupInFlight = 2
	// batchTimeout bounds one batch's transaction (it runs detached from
	// its callers' contexts: one caller giving up must not roll back the
	// others' commands).
	batchTimeout = 30 * time.Second
)

// enqueueReq is one Enqueue call waiting for its batch.
type enqueueReq struct {
	ctx  context.Context
	c    NewCommand // validated, defaults filled in
	id   uuid.UUID
	tp   string // the caller's traceparent ("" when untraced)
	done chan enqueueRes
}

type enqueueRes struct {
	cmd Command
	err error
}

// tenantQueue is one tenant's calls not yet taken by a batch.
type tenantQueue struct {
	pending  []*enqueueReq
	inFlight int
}

// grouper gathers Enqueue calls per tenant (a tenant transaction is one
// organisation's, with one signed context).
type grouper struct {
	mu      sync.Mutex
	tenants map[postgres.Tenant]*tenantQueue
}

// Enqueue adds a command for one gateway of the tenant's organisation. A
// gateway of another organisation is invisible, and answers ErrNotFound.
// Concurrent calls of one tenant share a transaction (group commit; see
// above); each is answered after the commit that holds its command. If ctx
// ends first, Enqueue answers ctx's error, and — as with any commit cut
// short — the command may still be enqueued.
func (d *Queue) Enqueue(ctx context.Context, t postgres.Tenant, c NewCommand) (Command, error) {
	c, err := validate(c)
	if err != nil {
		return Command{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Command{}, fmt.Errorf("commandqueue: command id: %w", err)
	}
	r := &enqueueReq{ctx: ctx, c: c, id: id, tp: tracing.Traceparent(ctx), done: make(chan enqueueRes, 1)}
	d.group.mu.Lock()
	tq := d.group.tenants[t]
	if tq == nil {
		tq = &tenantQueue{}
		d.group.tenants[t] = tq
	}
	tq.pending = append(tq.pending, r)
	start := tq.inFlight < d.opts.GroupInFlight
	if start {
		tq.inFlight++
	}
	d.group.mu.Unlock()
	if start {
		go d.flush(t, tq)
	}
	select {
	case res := <-r.done:
		return res.cmd, res.err
	case <-ctx.Done():
		return Command{}, fmt.Errorf("commandqueue: enqueue: %w", ctx.Err())
	}
}

// flush commits the tenant's pending calls, a batch at a time, until none
// is left.
func (d *Queue) flush(t postgres.Tenant, tq *tenantQueue) {
	for {
		batch := d.take(t, tq)
		if batch == nil {
			return
		}
		d.commit(t, batch)
	}
}

// take removes the next batch from the tenant's pending calls (those whose
// caller has given up are answered and dropped); nil when none is left,
// after which this flusher ends.
func (d *Queue) take(t postgres.Tenant, tq *tenantQueue) []*enqueueReq {
	d.group.mu.Lock()
	defer d.group.mu.Unlock()
	var batch []*enqueueReq
	for len(tq.pending) > 0 && len(batch) < d.opts.GroupMax {
		r := tq.pending[0]
		tq.pending[0] = nil
		tq.pending = tq.pending[1:]
		if err := r.ctx.Err(); err != nil {
			r.done <- enqueueRes{err: fmt.Errorf("commandqueue: enqueue: %w", err)}
			continue
		}
		batch = append(batch, r)
	}
	if len(batch) == 0 {
		tq.inFlight--
		if tq.inFlight == 0 {
			delete(d.group.tenants, t)
		}
		return nil
	}
	return batch
}

// commit enqueues a batch in one transaction and answers each call; when
// the batch fails as a whole, its calls are retried one by one.
func (d *Queue) commit(t postgres.Tenant, batch []*enqueueReq) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(batch[0].ctx), batchTimeout)
	defer cancel()
	res, err := d.insert(ctx, t, batch)
	if err != nil && len(batch) > 1 {
		d.batchRetries.Inc()
		for _, r := range batch {
			one, err := d.insert(ctx, t, []*enqueueReq{r})
			if err != nil {
				r.done <- enqueueRes{err: err}
				continue
			}
			r.done <- one[0]
		}
		return
	}
	for i, r := range batch {
		if err != nil {
			r.done <- enqueueRes{err: err}
			continue
		}
		r.done <- res[i]
	}
}

// insert runs one batch's transaction and returns each call's answer in
// order; an error means the transaction did not commit (as far as the
// client can tell).
func (d *Queue) insert(ctx context.Context, t postgres.Tenant, batch []*enqueueReq) ([]enqueueRes, error) {
	p := commandqueuedb.EnqueueBatchParams{}
	for _, r := range batch {
		p.Ids = append(p.Ids, r.id)
		p.GatewayIds = append(p.GatewayIds, r.c.GatewayID)
		p.Types = append(p.Types, r.c.Type)
		p.Payloads = append(p.Payloads, string(r.c.Payload))
		p.Priorities = append(p.Priorities, int32(r.c.Priority))
		p.MaxAttempts = append(p.MaxAttempts, int32(r.c.MaxAttempts))
		p.TtlMs = append(p.TtlMs, r.c.TTL.Milliseconds())
		p.CreatedBys = append(p.CreatedBys, r.c.CreatedBy)
		p.TraceParents = append(p.TraceParents, r.tp)
	}
	var rows []commandqueuedb.EnqueueBatchRow
	err := postgres.InTenant(ctx, d.db, t, func(tx pgx.Tx) error {
		var err error
		rows, err = commandqueuedb.New(tx).EnqueueBatch(ctx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("commandqueue: enqueue: %w", err)
	}
	d.batchSize.Observe(float64(len(batch)))
	byID := make(map[uuid.UUID]commandqueuedb.EnqueueBatchRow, len(rows))
	for _, row := range rows {
		byID[row.ID] = row
	}
	out := make([]enqueueRes, len(batch))
	for i, r := range batch {
		row, ok := byID[r.id]
		if !ok {
			out[i] = enqueueRes{err: ErrNotFound}
			continue
		}
		out[i] = enqueueRes{cmd: Command{ID: r.id, GatewayID: r.c.GatewayID, Type: r.c.Type, Payload: r.c.Payload, Priority: r.c.Priority,
			Status: StatusPending, MaxAttempts: r.c.MaxAttempts, CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt}}
		d.enqueued.WithLabelValues(r.c.Type).Inc()
	}
	return out, nil
}
