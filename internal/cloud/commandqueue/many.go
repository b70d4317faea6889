package commandqueue

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue/commandqueuedb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// ClaimMany is Claim for several gateways of the tenant's organisation in
// one transaction and one statement (the control hub claims for the
// gateways woken at once together): up to limit due commands per gateway,
// each gateway's highest priority first. A gateway listed twice is claimed
// for once. Concurrent claims never return the same command.
func (d *Queue) ClaimMany(ctx context.Context, t postgres.Tenant, gateways []uuid.UUID, limit int) (map[uuid.UUID][]Command, error) {
	out := make(map[uuid.UUID][]Command, len(gateways))
	ids := make([]uuid.UUID, 0, len(gateways))
	for _, g := range gateways {
		if _, ok := out[g]; !ok {
			out[g] = nil
			ids = append(ids, g)
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	err := postgres.InTenant(ctx, d.db, t, func(tx pgx.Tx) error {
		rows, err := commandqueuedb.New(tx).ClaimMany(ctx, commandqueuedb.ClaimManyParams{GatewayIds: ids, MaxRows: int32(limit),
			AckTimeout: interval(d.opts.AckTimeout)})
		for _, r := range rows {
			out[r.GatewayID] = append(out[r.GatewayID], Command{ID: r.ID, GatewayID: r.GatewayID, Type: r.Type, Payload: r.Payload,
				Priority: int(r.Priority), Status: StatusDelivered, Attempts: int(r.Attempts), MaxAttempts: int(r.MaxAttempts),
				ExpiresAt: r.ExpiresAt, CreatedAt: r.CreatedAt, TraceParent: deref(r.TraceParent)})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("commandqueue: claim many: %w", err)
	}
	for _, cs := range out {
		sortByPriority(cs)
	}
	return out, nil
}

// Ack is one gateway's acknowledgement of one of its commands, for
// AckManyTx.
type Ack struct {
	GatewayID uuid.UUID
	ID        uuid.UUID
	// Phase is protocol.AckReceived, AckCompleted or AckFailed.
	Phase  string
	Result json.RawMessage
	Error  string
}

// AckManyTx records acknowledgements inside the caller's tenant
// transaction, one statement per phase (received first, then completed and
// failed), as Received and Finish record them one at a time. It reports
// which it recorded; the others (a command not delivered or already
// finished, another gateway's, unknown) are for the caller to answer one by
// one through Received and Finish, after this transaction, which say
// whether a late or repeated acknowledgement is fine. Each command must be
// listed at most once (two phases of one command are two calls, in order).
func (d *Queue) AckManyTx(ctx context.Context, tx pgx.Tx, acks []Ack) ([]bool, error) {
	var rp commandqueuedb.ReceivedManyParams
	var fp commandqueuedb.FinishManyParams
	for _, a := range acks {
		switch a.Phase {
		case protocol.AckReceived:
			rp.Ids, rp.GatewayIds = append(rp.Ids, a.ID), append(rp.GatewayIds, a.GatewayID)
		case protocol.AckCompleted, protocol.AckFailed:
			status := StatusCompleted
			if a.Phase == protocol.AckFailed {
				status = StatusFailed
			}
			fp.Ids, fp.GatewayIds = append(fp.Ids, a.ID), append(fp.GatewayIds, a.GatewayID)
			fp.Statuses, fp.Results, fp.Errors = append(fp.Statuses, status), append(fp.Results, string(a.Result)), append(fp.Errors, a.Error)
		default:
			return nil, fmt.Errorf("commandqueue: ack many: phase %q: want received, completed or failed", a.Phase)
		}
	}
	q := commandqueuedb.New(tx)
	done := map[uuid.UUID]bool{}
	if len(rp.Ids) > 0 {
		rp.ExecTimeout = interval(d.opts.ExecTimeout)
		ids, err := q.ReceivedMany(ctx, rp)
		if err != nil {
			return nil, fmt.Errorf("commandqueue: received many: %w", err)
		}
		for _, id := range ids {
			done[id] = true
		}
	}
	if len(fp.Ids) > 0 {
		ids, err := q.FinishMany(ctx, fp)
		if err != nil {
			return nil, fmt.Errorf("commandqueue: finish many: %w", err)
		}
		for _, id := range ids {
			done[id] = true
		}
	}
	out := make([]bool, len(acks))
	for i, a := range acks {
		out[i] = done[a.ID]
		if out[i] {
			phase := a.Phase
			if phase == protocol.AckCompleted {
				phase = StatusCompleted
			}
			d.acks.WithLabelValues(phase).Inc()
		}
	}
	return out, nil
}
