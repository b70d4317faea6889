package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// TestIngestRoleCannotAbuseQueueAndGatewayMaintenance replays issue 11's
// reproductions against the command queue and the gateways as the ingest
// role: the caller-chosen-time signatures are refused; their replacements,
// with extreme arguments, leave both organisations' pending commands
// pending and gateways online; and another organisation's gateway id reveals
// nothing about its commands.
func TestIngestRoleCannotAbuseQueueAndGatewayMaintenance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, admin, a, b := seedTwo(ctx, t)
	// Both gateways heard from just now, each with a pending command due.
	if _, err := admin.Exec(ctx, `UPDATE gateway_instances SET status = 'online', last_seen_at = now()`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `UPDATE gateway_commands SET status = 'pending', next_attempt_at = now(), expires_at = now() + interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		t.Helper()
		var out string
		if err := admin.QueryRow(ctx, `SELECT (SELECT string_agg(status, ',' ORDER BY organization_id) FROM gateway_commands)
			|| '/' || (SELECT string_agg(status, ',' ORDER BY organization_id) FROM gateway_instances)`).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	const want = "pending,pending/online,online"
	if got := state(); got != want {
		t.Fatalf("seeded state %s, want %s", got, want)
	}
	ingest, err := pgx.Connect(ctx, db.IngestURL)
	if err != nil {
		t.Fatal(err)
	}
	defer ingest.Close(ctx)
	postgres.AttachContextKey(ingest, pg.ContextKey())

	for _, sql := range []string{
		`SELECT * FROM gateway_commands_sweep('9999-12-31'::timestamptz, '5s'::interval)`,
		`SELECT gateways_mark_offline('9999-12-31'::timestamptz)`,
	} {
		// Owner-only since 00012, dropped in 00014.
		if _, err := ingest.Exec(ctx, sql); err == nil || !(strings.Contains(err.Error(), "permission denied") || strings.Contains(err.Error(), "does not exist")) {
			t.Errorf("%s as the ingest role: %v, want permission denied or no such function", sql, err)
		}
	}
	for _, sql := range []string{
		`SELECT * FROM gateway_commands_sweep('-1000 years'::interval)`,
		`SELECT * FROM gateway_commands_sweep('1000 years'::interval)`,
		`SELECT gateways_mark_offline_after('-1000 years'::interval)`,
		`SELECT gateways_mark_offline_after('0'::interval)`,
		`SELECT gateways_mark_offline_after(NULL)`,
	} {
		if _, err := ingest.Exec(ctx, sql); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
		if got := state(); got != want {
			t.Fatalf("after %s: %s, want %s", sql, got, want)
		}
	}

	// gateway_commands_due answers nothing without an organisation context
	// and, in organisation A's, only for A's gateways: B's id reveals nothing.
	due := func(org int64, ids ...uuid.UUID) []uuid.UUID {
		t.Helper()
		var out []uuid.UUID
		err := postgres.InTenant(ctx, ingest, postgres.Tenant{OrganizationID: org}, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT gateway_commands_due($1)`, ids)
			if err != nil {
				return err
			}
			out, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := due(0, a.GatewayID, b.GatewayID); len(got) != 0 {
		t.Errorf("no organisation context: due %v, want nothing", got)
	}
	if got := due(a.OrganizationID, b.GatewayID); len(got) != 0 {
		t.Errorf("organisation A's context, B's gateway: due %v, want nothing", got)
	}
	if got := due(a.OrganizationID, a.GatewayID, b.GatewayID); len(got) != 1 || got[0] != a.GatewayID {
		t.Errorf("organisation A's context, both gateways: due %v, want only A's %s", got, a.GatewayID)
	}
	if got := due(b.OrganizationID, b.GatewayID); len(got) != 1 || got[0] != b.GatewayID {
		t.Errorf("organisation B's context, its own gateway: due %v, want %s", got, b.GatewayID)
	}

	// The normal sweep still works: data made old (an ack deadline and an
	// expiry passed, a heartbeat 31 s ago) is swept at the server's clock.
	if _, err := admin.Exec(ctx, `UPDATE gateway_commands SET expires_at = now() - interval '1 second' WHERE organization_id = $1`, a.OrganizationID); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `UPDATE gateway_instances SET last_seen_at = now() - interval '31 seconds' WHERE organization_id = $1`, b.OrganizationID); err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.Exec(ctx, `SELECT * FROM gateway_commands_sweep('1 second'::interval)`); err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.Exec(ctx, `SELECT gateways_mark_offline_after('90 seconds'::interval)`); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "expired,pending/online,online" {
		t.Fatalf("after the sweeps with a 90 s threshold: %s, want only A's command expired", got)
	}
	if _, err := ingest.Exec(ctx, `SELECT gateways_mark_offline_after('30 seconds'::interval)`); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "expired,pending/online,offline" {
		t.Fatalf("after the offline sweep with a 30 s threshold: %s, want B's gateway offline", got)
	}
}
