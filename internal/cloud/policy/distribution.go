package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy/policydb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// Distribution stages.
const (
	StageCanary = "canary" // the canary share has its commands
	StageFull   = "full"   // every target has its command
	StageDone   = "done"   // every target applied the version
	StageHalted = "halted" // a canary failed; the rest were not sent
)

// UpdatePayload is the payload of a policy_update command: what a gateway
// fetches (GET /v2/gateway/policies/{policy_id}?version=...) and checks.
type UpdatePayload struct {
	PolicyID        int64     `json:"policy_id"`
	Version         string    `json:"version"`
	Checksum        string    `json:"checksum"`
	RequiresRestart bool      `json:"requires_restart"`
	DistributionID  uuid.UUID `json:"distribution_id"`
}

// Distributor sends released versions to gateways through the command queue.
type Distributor struct {
	db    *pgxpool.Pool
	queue *commandqueue.Queue
}

// NewDistributor returns a Distributor; db and queue use the same role.
func NewDistributor(db *pgxpool.Pool, queue *commandqueue.Queue) *Distributor {
	return &Distributor{db: db, queue: queue}
}

// Distribute sends version of a policy to the given gateways of the actor's
// organisation (all of them when gateways is empty). With canaryPercent > 0,
// that share of the targets (at least one) gets the command first, and the
// rest once every canary has applied it (see Advance). The distribution
// keeps ctx's trace context (the release request's span): the commands it
// enqueues now and those later advances enqueue carry it.
func (d *Distributor) Distribute(ctx context.Context, a accounts.Actor, policyID int64, version string, gateways []uuid.UUID, canaryPercent int) (uuid.UUID, error) {
	if canaryPercent < 0 || canaryPercent > 100 {
		return uuid.Nil, &apperr.FieldError{Field: "canary_percent", Message: "must be between 0 and 100"}
	}
	var distID uuid.UUID
	err := postgres.InTenant(ctx, d.db, a.Tenant, func(tx pgx.Tx) error {
		q := policydb.New(tx)
		v, err := q.VersionByNumber(ctx, policydb.VersionByNumberParams{PolicyID: policyID, Version: version})
		org, versionID := v.OrganizationID, v.ID
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		all, err := q.ActiveGateways(ctx, org)
		if err != nil {
			return err
		}
		targets := all
		if len(gateways) > 0 {
			known := map[uuid.UUID]bool{}
			for _, id := range all {
				known[id] = true
			}
			targets = nil
			seen := map[uuid.UUID]bool{}
			for i, id := range gateways {
				if !known[id] {
					return &apperr.FieldError{Field: fmt.Sprintf("gateways[%d]", i), Message: fmt.Sprintf("gateway %s is not a gateway of this organisation", id)}
				}
				if !seen[id] {
					seen[id] = true
					targets = append(targets, id)
				}
			}
			sort.Slice(targets, func(i, j int) bool { return targets[i].String() < targets[j].String() })
		}
		if len(targets) == 0 {
			return &apperr.FieldError{Field: "gateways", Message: "the organisation has no gateway to distribute to"}
		}
		canaries := len(targets)
		stage := StageFull
		if canaryPercent > 0 && canaryPercent < 100 {
			canaries = max(1, len(targets)*canaryPercent/100)
			stage = StageCanary
		}
		if distID, err = q.InsertDistribution(ctx, policydb.InsertDistributionParams{OrganizationID: org, PolicyID: policyID,
			VersionID: versionID, CanaryPercent: int32(canaryPercent), Stage: stage, CreatedBy: a.Name,
			TraceParent: traceParentOf(ctx)}); err != nil {
			return fmt.Errorf("policy: insert distribution: %w", err)
		}
		canary := make([]bool, len(targets))
		for i := range canary {
			canary[i] = stage == StageCanary && i < canaries
		}
		if err := q.InsertTargets(ctx, policydb.InsertTargetsParams{DistributionID: distID, OrganizationID: org, GatewayIds: targets,
			Canaries: canary}); err != nil {
			return fmt.Errorf("policy: insert targets: %w", err)
		}
		_, err = d.advanceTx(ctx, tx, distID)
		return err
	})
	return distID, err
}

// Progress is where a distribution stands.
type Progress struct {
	ID            uuid.UUID
	PolicyID      int64
	Version       string
	CanaryPercent int
	CreatedAt     time.Time
	Stage         string
	Total         int
	Waiting       int // not sent yet (non-canary targets during the canary stage)
	Pending       int // command queued, not yet delivered
	Delivered     int // delivered, not yet acknowledged as applied
	Applied       int
	Failed        int // failed or expired
	Gateways      []GatewayProgress
}

// GatewayProgress is one target's state.
type GatewayProgress struct {
	GatewayID uuid.UUID
	Canary    bool
	Status    string // waiting, pending, delivered, applied, failed
	Error     string
}

type target struct {
	gateway   uuid.UUID
	canary    bool
	command   *uuid.UUID
	restart   *uuid.UUID
	cmdStatus *string
	cmdError  *string
}

func loadTargets(ctx context.Context, tx pgx.Tx, distID uuid.UUID) ([]target, error) {
	rows, err := policydb.New(tx).Targets(ctx, distID)
	if err != nil {
		return nil, err
	}
	ts := make([]target, 0, len(rows))
	for _, r := range rows {
		ts = append(ts, target{gateway: r.GatewayID, canary: r.Canary, command: r.CommandID, restart: r.RestartCommandID,
			cmdStatus: r.Status, cmdError: r.Error})
	}
	return ts, nil
}

func (t target) status() string {
	switch {
	case t.command == nil:
		return "waiting"
	case t.cmdStatus == nil:
		return "failed"
	}
	switch *t.cmdStatus {
	case commandqueue.StatusCompleted:
		return "applied"
	case commandqueue.StatusPending:
		return "pending"
	case commandqueue.StatusDelivered:
		return "delivered"
	}
	return "failed"
}

// Progress reports a distribution's state per gateway.
func (d *Distributor) Progress(ctx context.Context, t postgres.Tenant, distID uuid.UUID) (Progress, error) {
	p := Progress{ID: distID}
	err := postgres.InTenant(ctx, d.db, t, func(tx pgx.Tx) error {
		r, err := policydb.New(tx).DistributionStage(ctx, distID)
		p.Stage, p.Version, p.PolicyID, p.CanaryPercent, p.CreatedAt = r.Stage, r.Version, r.PolicyID, int(r.CanaryPercent), r.CreatedAt
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		ts, err := loadTargets(ctx, tx, distID)
		if err != nil {
			return err
		}
		for _, tg := range ts {
			g := GatewayProgress{GatewayID: tg.gateway, Canary: tg.canary, Status: tg.status()}
			if tg.cmdError != nil {
				g.Error = *tg.cmdError
			}
			p.Gateways = append(p.Gateways, g)
			switch g.Status {
			case "waiting":
				p.Waiting++
			case "pending":
				p.Pending++
			case "delivered":
				p.Delivered++
			case "applied":
				p.Applied++
			default:
				p.Failed++
			}
		}
		p.Total = len(ts)
		return nil
	})
	return p, err
}

// Advance moves a distribution on: once every canary applied the version the
// rest get their commands; a failed canary halts it; when every target has
// applied a version that requires a restart, each gets a restart_agent
// command; when all applied, it is done. It is idempotent and returns the
// stage. The Agent API calls it for every active distribution.
func (d *Distributor) Advance(ctx context.Context, t postgres.Tenant, distID uuid.UUID) (string, error) {
	var stage string
	err := postgres.InTenant(ctx, d.db, t, func(tx pgx.Tx) error {
		var err error
		stage, err = d.advanceTx(ctx, tx, distID)
		return err
	})
	return stage, err
}

func (d *Distributor) advanceTx(ctx context.Context, tx pgx.Tx, distID uuid.UUID) (string, error) {
	var stage string
	var pl UpdatePayload
	pl.DistributionID = distID
	q := policydb.New(tx)
	r, err := q.LockDistribution(ctx, distID)
	stage, pl.PolicyID, pl.Version, pl.Checksum, pl.RequiresRestart = r.Stage, r.PolicyID, r.Version, r.Checksum, r.RequiresRestart
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", err
	}
	if stage == StageDone || stage == StageHalted {
		return stage, nil
	}
	if r.TraceParent != nil && tracing.Traceparent(ctx) == "" {
		// An advance of its own (the Agent API's advancer): the commands
		// it enqueues join the distribution's trace.
		ctx = tracing.Extract(ctx, *r.TraceParent)
	}
	ts, err := loadTargets(ctx, tx, distID)
	if err != nil {
		return "", err
	}
	payload, _ := json.Marshal(pl)
	// The targets that get their update command in this advance, and those
	// that get their restart command: each set in one enqueue statement and
	// one update of the target rows.
	var send, restart []uuid.UUID
	if stage == StageCanary {
		allApplied, anyFailed := true, false
		for _, tg := range ts {
			if !tg.canary {
				continue
			}
			if tg.command == nil {
				send = append(send, tg.gateway)
				allApplied = false
				continue
			}
			switch tg.status() {
			case "applied":
			case "failed":
				anyFailed = true
			default:
				allApplied = false
			}
		}
		switch {
		case anyFailed:
			stage = StageHalted
		case allApplied:
			stage = StageFull
		}
	}
	if stage == StageFull {
		done := true
		for _, tg := range ts {
			switch {
			case tg.command == nil:
				send = append(send, tg.gateway)
				done = false
			case tg.status() == "applied":
				if pl.RequiresRestart && tg.restart == nil {
					restart = append(restart, tg.gateway)
				}
			case tg.status() == "failed":
			default:
				done = false
			}
		}
		if done {
			stage = StageDone
		}
	}
	createdBy := "distribution " + distID.String()
	if len(send) > 0 {
		cs, err := d.queue.EnqueueManyTx(ctx, tx, commandqueue.NewCommand{Type: protocol.CommandPolicyUpdate, Payload: payload, Priority: 10, CreatedBy: createdBy}, send)
		if err != nil {
			return "", fmt.Errorf("policy: enqueue updates: %w", err)
		}
		if err := q.SetTargetCommands(ctx, policydb.SetTargetCommandsParams{DistributionID: distID, GatewayIds: send, CommandIds: commandIDs(cs)}); err != nil {
			return "", fmt.Errorf("policy: set target commands: %w", err)
		}
	}
	if len(restart) > 0 {
		rp, _ := json.Marshal(map[string]any{"agent": "all", "mode": "graceful", "reason": "policy " + pl.Version + " requires a restart"})
		cs, err := d.queue.EnqueueManyTx(ctx, tx, commandqueue.NewCommand{Type: protocol.CommandRestartAgent, Payload: rp, Priority: 5, CreatedBy: createdBy}, restart)
		if err != nil {
			return "", fmt.Errorf("policy: enqueue restarts: %w", err)
		}
		if err := q.SetTargetRestartCommands(ctx, policydb.SetTargetRestartCommandsParams{DistributionID: distID, GatewayIds: restart, CommandIds: commandIDs(cs)}); err != nil {
			return "", fmt.Errorf("policy: set target restart commands: %w", err)
		}
	}
	if err := q.SetStage(ctx, policydb.SetStageParams{ID: distID, Stage: stage}); err != nil {
		return "", err
	}
	return stage, nil
}

// traceParentOf is ctx's traceparent for the column (nil untraced).
func traceParentOf(ctx context.Context) *string {
	if tp := tracing.Traceparent(ctx); tp != "" {
		return &tp
	}
	return nil
}

// commandIDs are the ids of cs, in order.
func commandIDs(cs []commandqueue.Command) []uuid.UUID {
	ids := make([]uuid.UUID, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

// AdvanceAll advances every active distribution of every organisation.
func (d *Distributor) AdvanceAll(ctx context.Context) error {
	list, err := policydb.New(d.db).ActiveDistributions(ctx)
	if err != nil {
		return fmt.Errorf("policy: active distributions: %w", err)
	}
	for _, a := range list {
		if _, err := d.Advance(ctx, postgres.Tenant{OrganizationID: a.OrganizationID}, a.ID); err != nil {
			return err
		}
	}
	return nil
}

// AdvanceReady advances the distributions of every organisation that an
// advance would move now (policy_distributions_ready: a stage over, a
// canary failed, a target without its command): cheap enough to call every
// few hundred milliseconds, so a stage follows its last acknowledgement
// closely. AdvanceAll, now and then, covers anything it might miss.
func (d *Distributor) AdvanceReady(ctx context.Context) error {
	list, err := policydb.New(d.db).ReadyDistributions(ctx)
	if err != nil {
		return fmt.Errorf("policy: ready distributions: %w", err)
	}
	for _, a := range list {
		if _, err := d.Advance(ctx, postgres.Tenant{OrganizationID: a.OrganizationID}, a.ID); err != nil {
			return err
		}
	}
	return nil
}
