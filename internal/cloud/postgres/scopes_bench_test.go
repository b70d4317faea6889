package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// BenchmarkRoleScopes lists an organisation of 10,000 employees (100
// departments of 100, one of them a lead's subtree: a department of 20
// with four children of 20) and reports on 50,000 window events of theirs,
// as HR (the whole organisation through the role policies of 00022), as
// the lead of the 100-employee subtree (its scope resolved once per
// statement), as the owner (no role policy), and as HR without the role
// policies (copies of the table and view as before 00022), on the same
// data:
//
//	go test ./internal/cloud/postgres -run '^$' -bench BenchmarkRoleScopes -count 6
//
// With EXPLAIN_SCOPES=1 it logs the lead's plans (EXPLAIN ANALYZE) instead.
func BenchmarkRoleScopes(b *testing.B) {
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
	if _, err := pgtest.SeedOrganization(ctx, admin, "beta"); err != nil {
		b.Fatal(err)
	}
	org := seeded.OrganizationID
	var lead int64
	if err := admin.QueryRow(ctx, `INSERT INTO departments (organization_id, parent_id, name) VALUES ($1, $2, 'Lead') RETURNING id`,
		org, seeded.DepartmentID).Scan(&lead); err != nil {
		b.Fatal(err)
	}
	root, ann, gw := seeded.DepartmentID, seeded.EmployeeID, seeded.GatewayID
	setup := []struct {
		sql  string
		args []any
	}{
		// The lead's four children, then 99 other departments.
		{`INSERT INTO departments (organization_id, parent_id, name) SELECT $1, $2, 'Lead-' || i FROM generate_series(1, 4) i`, []any{org, lead}},
		{`INSERT INTO departments (organization_id, parent_id, name) SELECT $1, $2, 'Other-' || i FROM generate_series(1, 99) i`, []any{org, root}},
		// 20 employees in each of the lead's five departments.
		{`INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name)
		  SELECT $1, d.id, 'L-' || d.id || '-' || i, 'First', 'Last'
		  FROM departments d, generate_series(1, 20) i WHERE d.organization_id = $1 AND (d.id = $2 OR d.parent_id = $2)`, []any{org, lead}},
		// 100 in each other department.
		{`INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name)
		  SELECT $1, d.id, 'O-' || d.id || '-' || i, 'First', 'Last'
		  FROM departments d, generate_series(1, 100) i WHERE d.organization_id = $1 AND d.name LIKE 'Other-%'`, []any{org}},
		{`INSERT INTO employee_identities (organization_id, employee_id, kind, value)
		  SELECT $1, e.id, 'windows_sid', 'S-1-5-21-9-' || e.id FROM employees e WHERE e.organization_id = $1 AND e.id <> $2`, []any{org, ann}},
		// Five window events per employee over the last week.
		{`INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, datetime, duration_seconds)
		  SELECT gen_random_uuid(), $1, $3, row_number() OVER () + 1000, 'agent-1', 'PC-1', i.value, 'Editor', 'code.exe', now() - (n * 29) * interval '1 hour', 30
		  FROM employee_identities i, generate_series(1, 5) n WHERE i.organization_id = $1 AND i.kind = 'windows_sid' AND i.employee_id <> $2`, []any{org, ann, gw}},
	}
	for _, q := range setup {
		if _, err := admin.Exec(ctx, q.sql, q.args...); err != nil {
			b.Fatalf("%s: %v", q.sql, err)
		}
	}
	// As before 00022, for HR: a copy of employees under the organisation
	// policy only, and a copy of 00014's role-blind view.
	blind := `CREATE SCHEMA bench_blind;
		CREATE TABLE bench_blind.employees (LIKE public.employees INCLUDING ALL);
		INSERT INTO bench_blind.employees OVERRIDING SYSTEM VALUE SELECT * FROM public.employees;
		ALTER TABLE bench_blind.employees ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
		CREATE POLICY tenant_isolation ON bench_blind.employees
		  USING (organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()));
		CREATE VIEW bench_blind.active_windows WITH (security_barrier) AS
		  SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds
		  FROM monitoring.active_windows
		  WHERE organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations())
		  UNION ALL
		  SELECT f.id, f.organization_id, f.gateway_id, f.agent_uid, f.computer_uid, f.user_sid, f.window_title, f.process_name, f.url,
		         f.datetime, f.duration_seconds
		  FROM monitoring_fallback.active_windows f
		  WHERE (f.organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()))
		    AND NOT EXISTS (SELECT 1 FROM monitoring.active_windows m
		                    WHERE m.organization_id = f.organization_id AND m.id = f.id AND m.datetime = f.datetime);
		GRANT USAGE ON SCHEMA bench_blind TO staff_dashboard;
		GRANT SELECT ON ALL TABLES IN SCHEMA bench_blind TO staff_dashboard`
	if _, err := admin.Exec(ctx, blind); err != nil {
		b.Fatal(err)
	}
	// Hint bits and visibility map set, statistics current: no variant
	// pays for the fresh data.
	if _, err := admin.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	var employees int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM employees WHERE organization_id = $1`, org).Scan(&employees); err != nil {
		b.Fatal(err)
	}
	b.Logf("organisation: %d employees", employees)

	dash, err := postgres.Connect(ctx, db.DashboardURL, 1, pg.ContextKey())
	if err != nil {
		b.Fatal(err)
	}
	defer dash.Close()
	owner, err := postgres.Connect(ctx, db.OwnerURL, 1, pg.ContextKey())
	if err != nil {
		b.Fatal(err)
	}
	defer owner.Close()

	queries := []struct{ name, sql string }{
		{"employees", `SELECT id, department_id, employee_number, first_name, last_name FROM employees WHERE organization_id = $1 ORDER BY id`},
		{"window report", `SELECT user_sid, count(*), sum(duration_seconds) FROM monitoring_read.active_windows
			WHERE organization_id = $1 AND datetime > now() - interval '7 days' GROUP BY 1`},
	}
	variants := []struct {
		name   string
		pool   *pgxpool.Pool
		tenant postgres.Tenant
	}{
		{"HR", dash, postgres.Tenant{OrganizationID: org, Role: postgres.AppHR}},
		{"lead", dash, postgres.Tenant{OrganizationID: org, Role: postgres.AppDepartmentLead, Scope: fmt.Sprintf("department:%d", lead)}},
		{"owner", owner, postgres.Tenant{}},
	}
	if os.Getenv("EXPLAIN_SCOPES") != "" {
		for _, q := range append(queries, queries...) { // cold, then warm
			_ = postgres.InTenant(ctx, dash, variants[1].tenant, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, VERBOSE, BUFFERS) "+q.sql, org)
				if err != nil {
					b.Fatal(err)
				}
				lines, _ := pgx.CollectRows(rows, pgx.RowTo[string])
				b.Logf("%s as the lead:\n%s", q.name, strings.Join(lines, "\n"))
				return nil
			})
		}
		for _, view := range []string{"monitoring_read", "bench_blind", "monitoring_read", "bench_blind"} {
			_ = postgres.InTenant(ctx, dash, variants[0].tenant, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, VERBOSE, BUFFERS) "+strings.Replace(queries[1].sql, "monitoring_read.", view+".", 1), org)
				if err != nil {
					b.Fatal(err)
				}
				lines, _ := pgx.CollectRows(rows, pgx.RowTo[string])
				b.Logf("report as HR over %s:\n%s", view, strings.Join(lines, "\n"))
				return nil
			})
		}
		return
	}
	run := func(name string, pool *pgxpool.Pool, tenant postgres.Tenant, sql string) {
		b.Run(name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				err := postgres.InTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
					rows, err := tx.Query(ctx, sql, org)
					if err != nil {
						return err
					}
					n = 0
					for rows.Next() {
						n++
					}
					return rows.Err()
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "rows")
		})
	}
	for _, q := range queries {
		for _, v := range variants {
			run(q.name+"/"+v.name, v.pool, v.tenant, q.sql)
			if v.name == "HR" {
				blindSQL := strings.NewReplacer("FROM employees", "FROM bench_blind.employees", "monitoring_read.", "bench_blind.").Replace(q.sql)
				run(q.name+"/HR before 00022", v.pool, v.tenant, blindSQL)
			}
		}
	}
}
