package policy_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// TestCanaryHaltsOnFailureAndRestartFollowsApply drives distributions by
// hand, acknowledging commands as gateways would.
func TestCanaryHaltsOnFailureAndRestartFollowsApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, admin, a, b := setup(t)
	// Ten gateways in organisation A (the seed made one).
	for i := 0; i < 9; i++ {
		if _, err := admin.Exec(ctx, `INSERT INTO gateway_instances (organization_id, serial) VALUES ($1, $2)`, a.Tenant.OrganizationID, uuid.NewString()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Exec(ctx, `DELETE FROM gateway_commands`); err != nil {
		t.Fatal(err)
	}
	pool := svcPool(t, admin)
	q, err := commandqueue.New(pool, commandqueue.Options{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	dist := policy.NewDistributor(pool, q)
	p, err := svc.Create(ctx, a, "Canary", []byte(`{"activity":{"track_sites":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := svc.Release(ctx, a, p.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	// Another organisation cannot distribute A's policy, nor to A's gateways.
	if _, err := dist.Distribute(ctx, b, p.ID, v.Version, nil, 0); !errors.Is(err, policy.ErrNotFound) {
		t.Fatalf("B distributing A's policy: %v", err)
	}
	var aGateway uuid.UUID
	if err := admin.QueryRow(ctx, `SELECT id FROM gateway_instances WHERE organization_id = $1 LIMIT 1`, a.Tenant.OrganizationID).Scan(&aGateway); err != nil {
		t.Fatal(err)
	}
	pb, err := svc.Create(ctx, b, "B policy", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	vb, err := svc.Release(ctx, b, pb.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	var fe *apperr.FieldError
	if _, err := dist.Distribute(ctx, b, pb.ID, vb.Version, []uuid.UUID{aGateway}, 0); !errors.As(err, &fe) || fe.Field != "gateways[0]" {
		t.Fatalf("B distributing to A's gateway: %v", err)
	}

	// 20 % canary of 10 gateways: 2 get the command, 8 wait.
	id, err := dist.Distribute(ctx, a, p.ID, v.Version, nil, 20)
	if err != nil {
		t.Fatal(err)
	}
	prog, _ := dist.Progress(ctx, a.Tenant, id)
	if prog.Stage != policy.StageCanary || prog.Pending != 2 || prog.Waiting != 8 {
		t.Fatalf("after distribute: %+v", strip(prog))
	}
	// Canary 1 applies, canary 2 fails: the distribution halts.
	canaries := commandsFor(ctx, t, admin, id)
	finish(ctx, t, q, a.Tenant, canaries[0], true)
	finish(ctx, t, q, a.Tenant, canaries[1], false)
	stage, err := dist.Advance(ctx, a.Tenant, id)
	if err != nil || stage != policy.StageHalted {
		t.Fatalf("after a failed canary: %s %v, want halted", stage, err)
	}
	if prog, _ := dist.Progress(ctx, a.Tenant, id); prog.Waiting != 8 || prog.Applied != 1 || prog.Failed != 1 {
		t.Fatalf("halted progress: %+v", strip(prog))
	}

	// A second distribution whose canaries succeed goes to everyone, then
	// each gateway gets a restart (the version requires one), then done.
	id2, err := dist.Distribute(ctx, a, p.ID, v.Version, nil, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commandsFor(ctx, t, admin, id2) {
		finish(ctx, t, q, a.Tenant, c, true)
	}
	if stage, _ := dist.Advance(ctx, a.Tenant, id2); stage != policy.StageFull {
		t.Fatalf("after the canaries applied: %s, want full", stage)
	}
	rest := commandsFor(ctx, t, admin, id2)
	if len(rest) != 10 {
		t.Fatalf("%d targets with a command, want 10", len(rest))
	}
	for _, c := range rest[2:] {
		finish(ctx, t, q, a.Tenant, c, true)
	}
	for _, c := range rest {
		finish(ctx, t, q, a.Tenant, c, true)
	}
	if stage, _ := dist.Advance(ctx, a.Tenant, id2); stage != policy.StageDone {
		t.Fatalf("after all applied: %s, want done", stage)
	}
	var restarts int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM policy_distribution_targets t JOIN gateway_commands c ON c.id = t.restart_command_id
		WHERE t.distribution_id = $1 AND c.type = 'restart_agent'`, id2).Scan(&restarts); err != nil || restarts != 10 {
		t.Fatalf("restart commands = %d (%v), want 10", restarts, err)
	}
}

func strip(p policy.Progress) policy.Progress { p.Gateways = nil; return p }

func svcPool(t *testing.T, admin *pgx.Conn) *pgxpool.Pool {
	t.Helper()
	cfg := admin.Config()
	url := "postgres://staff_dashboard@" + cfg.Host + ":" + strconv.Itoa(int(cfg.Port)) + "/" + cfg.Database + "?sslmode=disable"
	pool, err := postgres.Connect(context.Background(), url, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// commandsFor lists the command ids of a distribution's targets, canaries first.
func commandsFor(ctx context.Context, t *testing.T, admin *pgx.Conn, dist uuid.UUID) []uuid.UUID {
	t.Helper()
	rows, err := admin.Query(ctx, `SELECT command_id FROM policy_distribution_targets WHERE distribution_id = $1 AND command_id IS NOT NULL ORDER BY canary DESC, gateway_id`, dist)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func finish(ctx context.Context, t *testing.T, q *commandqueue.Queue, tenant postgres.Tenant, id uuid.UUID, ok bool) {
	t.Helper()
	c, err := q.Get(ctx, tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Finish(ctx, tenant, c.GatewayID, id, ok, nil, map[bool]string{true: "", false: "checksum mismatch"}[ok]); err != nil {
		t.Fatal(err)
	}
}
