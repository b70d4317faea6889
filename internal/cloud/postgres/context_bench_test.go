package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// BenchmarkTenantPredicate runs the isolation queries and a report-like
// aggregate over monitoring_read with the verified predicate (the views and
// policies of 00014) and with the old, forgeable one (copies of the views
// in schema bench_old, filtering on app.current_organization_id), on the
// same data, side by side:
//
//	go test ./internal/cloud/postgres -run '^$' -bench BenchmarkTenantPredicate -count 6
func BenchmarkTenantPredicate(b *testing.B) {
	ctx := context.Background()
	db := pg.NewDatabase(b)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	seeded, err := pgtest.SeedOrganization(ctx, admin, "alpha")
	if err != nil {
		b.Fatal(err)
	}
	a := seeded.OrganizationID
	if _, err := pgtest.SeedOrganization(ctx, admin, "beta"); err != nil {
		b.Fatal(err)
	}
	// 50,000 window events per organisation over the last 7 days.
	if _, err := admin.Exec(ctx, `INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, datetime, duration_seconds)
		SELECT gen_random_uuid(), g.organization_id, g.id, i, 'agent-' || (i % 50), 'PC-' || (i % 50), 'S-1-5-21-' || (i % 50), 'Editor', 'code.exe',
		       now() - (i % 10000) * interval '1 minute', 30
		FROM gateway_instances g, generate_series(1, 50000) i`); err != nil {
		b.Fatal(err)
	}
	old := `CREATE SCHEMA bench_old;
		CREATE VIEW bench_old.active_windows WITH (security_barrier) AS
		  SELECT id, organization_id, user_sid, computer_uid, datetime, duration_seconds FROM monitoring.active_windows
		  WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
		     OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN';
		GRANT USAGE ON SCHEMA bench_old TO staff_dashboard;
		GRANT SELECT ON ALL TABLES IN SCHEMA bench_old TO staff_dashboard;
		ANALYZE`
	if _, err := admin.Exec(ctx, old); err != nil {
		b.Fatal(err)
	}
	pool, err := postgres.Connect(ctx, db.DashboardURL, 1, pg.ContextKey())
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	const report = `SELECT user_sid, date_trunc('hour', datetime), count(*), sum(duration_seconds) FROM %s
		WHERE datetime > now() - interval '7 days' GROUP BY 1, 2`
	queries := []struct{ name, verified, old string }{
		{"isolation", `SELECT count(*) FROM monitoring_read.active_windows WHERE user_sid = 'S-1-5-21-7'`,
			`SELECT count(*) FROM bench_old.active_windows WHERE user_sid = 'S-1-5-21-7'`},
		{"report", fmt.Sprintf(report, "monitoring_read.active_windows"), fmt.Sprintf(report, "bench_old.active_windows")},
	}
	tenant := postgres.Tenant{OrganizationID: a, Role: postgres.AppHR}
	for _, q := range queries {
		for _, variant := range []struct{ name, sql string }{{"verified", q.verified}, {"old", q.old}} {
			b.Run(q.name+"/"+variant.name, func(b *testing.B) {
				for b.Loop() {
					err := postgres.InTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
						// Both variants set the old settings too, so that they
						// differ only in the predicate.
						if _, err := tx.Exec(ctx, `SELECT set_config('app.current_organization_id', $1, true), set_config('app.current_role', 'HR', true)`, fmt.Sprint(a)); err != nil {
							return err
						}
						rows, err := tx.Query(ctx, variant.sql)
						if err != nil {
							return err
						}
						n := 0
						for rows.Next() {
							n++
						}
						if n == 0 {
							return fmt.Errorf("no rows")
						}
						return rows.Err()
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
