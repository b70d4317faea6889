package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"sort"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
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
// rest once every canary has applied it (see Advance).
func (d *Distributor) Distribute(ctx context.Context, a accounts.Actor, policyID int64, version string, gateways []uuid.UUID, canaryPercent int) (uuid.UUID, error) {
	if canaryPercent < 0 || canaryPercent > 100 {
		return uuid.Nil, &apperr.FieldError{Field: "canary_percent", Message: "must be between 0 and 100"}
	}
	var distID uuid.UUID
	err := postgres.InTenant(ctx, d.db, a.Tenant, func(tx pgx.Tx) error {
		var org int64
		var versionID uuid.UUID
		err := tx.QueryRow(ctx, `SELECT v.organization_id, v.id FROM policy_versions v WHERE v.policy_id = $1 AND v.version = $2`, policyID, version).Scan(&org, &versionID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id FROM gateway_instances WHERE organization_id = $1 AND revoked_at IS NULL ORDER BY id`, org)
		if err != nil {
			return err
		}
		all, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
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
		if err := tx.QueryRow(ctx, `INSERT INTO policy_distributions (organization_id, policy_id, version_id, canary_percent, stage, created_by)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, org, policyID, versionID, canaryPercent, stage, a.Name).Scan(&distID); err != nil {
			return fmt.Errorf("policy: insert distribution: %w", err)
		}
		for i, gw := range targets {
			if _, err := tx.Exec(ctx, `INSERT INTO policy_distribution_targets (distribution_id, organization_id, gateway_id, canary) VALUES ($1, $2, $3, $4)`,
				distID, org, gw, stage == StageCanary && i < canaries); err != nil {
				return fmt.Errorf("policy: insert target: %w", err)
			}
		}
		_, err = d.advanceTx(ctx, tx, distID)
		return err
	})
	return distID, err
}

// Progress is where a distribution stands.
type Progress struct {
	ID        uuid.UUID
	Version   string
	Stage     string
	Total     int
	Waiting   int // not sent yet (non-canary targets during the canary stage)
	Pending   int // command queued, not yet delivered
	Delivered int // delivered, not yet acknowledged as applied
	Applied   int
	Failed    int // failed or expired
	Gateways  []GatewayProgress
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
	rows, err := tx.Query(ctx, `SELECT t.gateway_id, t.canary, t.command_id, t.restart_command_id, c.status, c.error
		FROM policy_distribution_targets t LEFT JOIN gateway_commands c ON c.id = t.command_id
		WHERE t.distribution_id = $1 ORDER BY t.gateway_id`, distID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (target, error) {
		var t target
		err := r.Scan(&t.gateway, &t.canary, &t.command, &t.restart, &t.cmdStatus, &t.cmdError)
		return t, err
	})
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
		err := tx.QueryRow(ctx, `SELECT d.stage, v.version FROM policy_distributions d JOIN policy_versions v ON v.id = d.version_id WHERE d.id = $1`, distID).
			Scan(&p.Stage, &p.Version)
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
	err := tx.QueryRow(ctx, `SELECT d.stage, v.policy_id, v.version, v.checksum, v.requires_restart
		FROM policy_distributions d JOIN policy_versions v ON v.id = d.version_id WHERE d.id = $1 FOR UPDATE OF d`, distID).
		Scan(&stage, &pl.PolicyID, &pl.Version, &pl.Checksum, &pl.RequiresRestart)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", err
	}
	if stage == StageDone || stage == StageHalted {
		return stage, nil
	}
	ts, err := loadTargets(ctx, tx, distID)
	if err != nil {
		return "", err
	}
	payload, _ := json.Marshal(pl)
	send := func(tg target) error {
		c, err := d.queue.EnqueueTx(ctx, tx, commandqueue.NewCommand{GatewayID: tg.gateway, Type: protocol.CommandPolicyUpdate, Payload: payload, Priority: 10, CreatedBy: "distribution " + distID.String()})
		if err != nil {
			return fmt.Errorf("policy: enqueue update for %s: %w", tg.gateway, err)
		}
		_, err = tx.Exec(ctx, `UPDATE policy_distribution_targets SET command_id = $3 WHERE distribution_id = $1 AND gateway_id = $2`, distID, tg.gateway, c.ID)
		return err
	}
	if stage == StageCanary {
		allApplied, anyFailed := true, false
		for _, tg := range ts {
			if !tg.canary {
				continue
			}
			if tg.command == nil {
				if err := send(tg); err != nil {
					return "", err
				}
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
				if err := send(tg); err != nil {
					return "", err
				}
				done = false
			case tg.status() == "applied":
				if pl.RequiresRestart && tg.restart == nil {
					rp, _ := json.Marshal(map[string]any{"agent": "all", "mode": "graceful", "reason": "policy " + pl.Version + " requires a restart"})
					c, err := d.queue.EnqueueTx(ctx, tx, commandqueue.NewCommand{GatewayID: tg.gateway, Type: protocol.CommandRestartAgent, Payload: rp, Priority: 5, CreatedBy: "distribution " + distID.String()})
					if err != nil {
						return "", err
					}
					if _, err := tx.Exec(ctx, `UPDATE policy_distribution_targets SET restart_command_id = $3 WHERE distribution_id = $1 AND gateway_id = $2`, distID, tg.gateway, c.ID); err != nil {
						return "", err
					}
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
	if _, err := tx.Exec(ctx, `UPDATE policy_distributions SET stage = $2, updated_at = now() WHERE id = $1`, distID, stage); err != nil {
		return "", err
	}
	return stage, nil
}

// AdvanceAll advances every active distribution of every organisation.
func (d *Distributor) AdvanceAll(ctx context.Context) error {
	rows, err := d.db.Query(ctx, `SELECT id, organization_id FROM policy_distributions_active()`)
	if err != nil {
		return fmt.Errorf("policy: active distributions: %w", err)
	}
	type active struct {
		id  uuid.UUID
		org int64
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (active, error) {
		var a active
		err := r.Scan(&a.id, &a.org)
		return a, err
	})
	if err != nil {
		return fmt.Errorf("policy: active distributions: %w", err)
	}
	for _, a := range list {
		if _, err := d.Advance(ctx, postgres.Tenant{OrganizationID: a.org}, a.id); err != nil {
			return err
		}
	}
	return nil
}
