package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// nonTenantTables are the relational tables that hold no organisation's
// data. Every other table in schema public must be under forced RLS.
var nonTenantTables = []string{"device_adapters", "schema_migrations"}

// tenantRelation is a table or view that holds rows of several
// organisations, and the column naming the organisation of a row.
type tenantRelation struct {
	oid      uint32
	name     string // schema-qualified
	orgCol   string
	touchCol string // a column UPDATE can set to itself
	isView   bool
}

// tenantRelations lists, from the catalog, every relation a runtime role
// might read tenant rows through: tables of schema public with an
// organisation column (organizations itself by id) and the views of
// monitoring_read.
func tenantRelations(ctx context.Context, t *testing.T, conn *pgx.Conn) []tenantRelation {
	t.Helper()
	rows, err := conn.Query(ctx, `
		SELECT c.oid, n.nspname || '.' || c.relname,
		       CASE WHEN c.relname = 'organizations' THEN 'id' ELSE 'organization_id' END,
		       CASE WHEN c.relname = 'organizations' THEN 'name' ELSE 'organization_id' END,
		       c.relkind = 'v'
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE (n.nspname = 'public' AND c.relkind IN ('r', 'p') AND (c.relname = 'organizations' OR EXISTS (
		           SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'organization_id' AND NOT a.attisdropped)))
		   OR (n.nspname = 'monitoring_read' AND c.relkind = 'v')
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenantRelation, error) {
		var tr tenantRelation
		err := r.Scan(&tr.oid, &tr.name, &tr.orgCol, &tr.touchCol, &tr.isView)
		return tr, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("found only %d tenant relations; the catalog query is wrong", len(out))
	}
	return out
}

// TestCatalogAudit checks, through the dashboard role's own connection, the
// whole isolation model of DESIGN.md §3.
func TestCatalogAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	dash, err := pgx.Connect(ctx, db.DashboardURL)
	if err != nil {
		t.Fatal(err)
	}
	defer dash.Close(ctx)

	audit := func(t *testing.T) {
		// The role itself.
		var user, session string
		var super, bypass, createRole, createDB bool
		if err := dash.QueryRow(ctx, `SELECT current_user, session_user, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb
			FROM pg_roles WHERE rolname = current_user`).Scan(&user, &session, &super, &bypass, &createRole, &createDB); err != nil {
			t.Fatal(err)
		}
		if user != postgres.RoleDashboard || session != postgres.RoleDashboard {
			t.Fatalf("connected as %s/%s, want %s", user, session, postgres.RoleDashboard)
		}
		if super || bypass || createRole || createDB {
			t.Fatalf("dashboard role: superuser=%v bypassrls=%v createrole=%v createdb=%v, want all false", super, bypass, createRole, createDB)
		}
		// Owns nothing: no relation, function, schema, type or database.
		var owned int
		if err := dash.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM pg_class WHERE relowner = current_user::regrole) +
			(SELECT count(*) FROM pg_proc WHERE proowner = current_user::regrole) +
			(SELECT count(*) FROM pg_namespace WHERE nspowner = current_user::regrole) +
			(SELECT count(*) FROM pg_type WHERE typowner = current_user::regrole) +
			(SELECT count(*) FROM pg_database WHERE datdba = current_user::regrole)`).Scan(&owned); err != nil {
			t.Fatal(err)
		}
		if owned != 0 {
			t.Fatalf("dashboard role owns %d objects, want 0", owned)
		}
		// RLS enabled and forced on every table of schema public but the
		// platform tables, and every policy fails closed via NULLIF.
		rows, err := dash.Query(ctx, `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
				(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for rows.Next() {
			var name string
			var rls, force bool
			var policies int
			if err := rows.Scan(&name, &rls, &force, &policies); err != nil {
				t.Fatal(err)
			}
			if slices.Contains(nonTenantTables, name) {
				continue
			}
			checked++
			if !rls || !force || policies == 0 {
				t.Errorf("table %s: rls=%v forced=%v policies=%d, want enabled, forced, ≥1 policy", name, rls, force, policies)
			}
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		if checked < 15 {
			t.Fatalf("checked only %d tenant tables", checked)
		}
		// Every policy of schema public decides on the verified context
		// only, called once per statement as a scalar subquery, and never
		// on a plain setting SQL could forge. The restrictive role
		// policies (00022) only narrow what a permissive one let through,
		// so they need not name the organisation.
		var badPolicies []string
		rows, err = dash.Query(ctx, `SELECT tablename || '.' || policyname FROM pg_policies
			WHERE schemaname = 'public' AND NOT (tablename = 'audit_log' AND policyname = 'tenant_append') AND (
			  coalesce(qual, '') || coalesce(with_check, '') LIKE '%current_setting%'
			  OR (permissive = 'PERMISSIVE' AND (
			    coalesce(qual, '') || coalesce(with_check, '') NOT LIKE '%( SELECT app.org_id() AS org_id)%'
			    OR coalesce(qual, '') || coalesce(with_check, '') NOT LIKE '%( SELECT app.all_organizations() AS all_organizations)%')))`)
		if err != nil {
			t.Fatal(err)
		}
		badPolicies, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(badPolicies) > 0 {
			t.Errorf("policies not written with (SELECT app.org_id()) and (SELECT app.all_organizations()): %v", badPolicies)
		}
		// No privilege of any kind on any partition or chunk, nor on the
		// time-series tables and schema themselves, nor on TimescaleDB's
		// statistics of the stored data (bootstrap.sql revokes them).
		rows, err = dash.Query(ctx, `SELECT n.nspname || '.' || c.relname
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE (c.relispartition OR n.nspname IN ('monitoring', 'monitoring_fallback', '_timescaledb_internal')
			       OR n.nspname || '.' || c.relname = ANY($1))
			  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
			  AND has_table_privilege(current_user, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')`,
			timescaleDBStatistics)
		if err != nil {
			t.Fatal(err)
		}
		leaky, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(leaky) > 0 {
			t.Errorf("dashboard role has privileges on partitions or time-series tables: %v", leaky)
		}
		var monUsage bool
		if err := dash.QueryRow(ctx, `SELECT has_schema_privilege(current_user, 'monitoring', 'USAGE') OR has_schema_privilege(current_user, 'monitoring_fallback', 'USAGE')`).Scan(&monUsage); err != nil {
			t.Fatal(err)
		}
		if monUsage {
			t.Error("dashboard role has USAGE on schema monitoring or monitoring_fallback")
		}
		// Every relation the role can read that depends on a time-series
		// table is a security_barrier view in monitoring_read that filters
		// by the organisation setting.
		rows, err = dash.Query(ctx, `
			WITH RECURSIVE ts AS (
			    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			    WHERE n.nspname IN ('monitoring', 'monitoring_fallback')
			), dep AS (
			    SELECT DISTINCT r.ev_class AS oid FROM pg_rewrite r JOIN pg_depend d ON d.objid = r.oid
			    WHERE d.refobjid IN (SELECT oid FROM ts) AND r.ev_class NOT IN (SELECT oid FROM ts)
			    UNION
			    SELECT r.ev_class FROM pg_rewrite r JOIN pg_depend d ON d.objid = r.oid JOIN dep ON d.refobjid = dep.oid
			    WHERE r.ev_class <> dep.oid
			)
			SELECT n.nspname || '.' || c.relname, c.relkind::text, n.nspname,
			       coalesce('security_barrier=true' = ANY(c.reloptions), false),
			       pg_get_viewdef(c.oid) LIKE '%( SELECT app.org_id() AS org_id)%' AND pg_get_viewdef(c.oid) NOT LIKE '%current_setting%'
			FROM dep JOIN pg_class c ON c.oid = dep.oid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE has_table_privilege(current_user, c.oid, 'SELECT')`)
		if err != nil {
			t.Fatal(err)
		}
		paths := 0
		for rows.Next() {
			var name, kind, schema string
			var barrier, filters bool
			if err := rows.Scan(&name, &kind, &schema, &barrier, &filters); err != nil {
				t.Fatal(err)
			}
			paths++
			if kind != "v" || schema != "monitoring_read" || !barrier || !filters {
				t.Errorf("read path %s (kind %s): want a security_barrier view in monitoring_read filtering by organisation (barrier=%v filters=%v)", name, kind, barrier, filters)
			}
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		if paths < 5 {
			t.Errorf("found %d monitoring read paths, want the 5 views", paths)
		}
		// The only SECURITY DEFINER functions the dashboard role may call
		// verify its own context, append an audit row stamped from it, or
		// resolve its own scope (00022).
		rows, err = dash.Query(ctx, `SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			  AND has_function_privilege(current_user, p.oid, 'EXECUTE') ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		definers, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		// 00021 adds the sign-in's, which act before any context exists
		// (signin_functions_test.go tests each); 00022 the role scopes'
		// three; 00024 the live events' two numbers and their prune; 00025
		// an administrator's ending of a user's sessions; 00026 the report
		// settings (zone and report policy), readable by every role.
		if want := []string{"app.audit(bigint,text,text,text,text,jsonb)", "app.context()",
			"app.dashboard_events_bounds()", "app.dashboard_events_prune()", "app.dashboard_events_publish(integer)", "app.login_lookup(text)",
			"app.login_result(text,bigint,text,text,text,bytea,interval,interval,integer,interval,interval,inet,text)",
			"app.password_change(bigint,uuid,text,bytea,interval,interval,inet,text)",
			"app.report_settings()",
			"app.scope_departments()", "app.scope_employees()", "app.scope_identities(text)", "app.session_active(uuid)",
			"app.session_email(bigint,uuid)", "app.session_logout(bytea,inet)", "app.session_refresh(bytea,bytea,interval,inet)",
			"app.sessions_revoke_user(bigint,uuid,inet)", "app.set_user_language(text)", "app.user_sessions_end(bigint)"}; !slices.Equal(definers, want) {
			t.Errorf("dashboard role may execute SECURITY DEFINER functions %v, want exactly %v", definers, want)
		}
	}

	t.Run("as migrated", audit)

	// Partitions created after the test started (as the ingest service does
	// every day) must be as closed as the first ones.
	var before int
	if err := dash.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relispartition AND relkind = 'r'`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	ingest, err := pgx.Connect(ctx, db.IngestURL)
	if err != nil {
		t.Fatal(err)
	}
	defer ingest.Close(ctx)
	var created int
	if err := ingest.QueryRow(ctx, `SELECT monitoring.ensure_recent_partitions(10, 3)`).Scan(&created); err != nil {
		t.Fatal(err)
	}
	var after int
	if err := dash.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relispartition AND relkind = 'r'`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	// Native partitions: today - 10 and - 9 × 5 tables × 2 schemas. With
	// TimescaleDB the store's chunks are TimescaleDB's work and only the
	// fallback (always native) gets partitions; new chunks, some
	// compressed, are made as TimescaleDB makes them instead.
	want := 20
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if storageKind(ctx, t, admin) == "timescaledb" {
		want = 10
	}
	if created != want || after != before+want {
		t.Fatalf("ensure_recent_partitions created %d (partitions %d → %d), want %d new", created, before, after, want)
	}
	makeTimescaleDBChunks(ctx, t, db)
	t.Run("after new partitions", audit)
}

// seedTwo gives t a database with two organisations seeded identically,
// and an administrator's connection to it.
func seedTwo(ctx context.Context, t *testing.T) (*pgtest.Database, *pgx.Conn, pgtest.Seeded, pgtest.Seeded) {
	t.Helper()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	a, err := pgtest.SeedOrganization(ctx, admin, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	b, err := pgtest.SeedOrganization(ctx, admin, "beta")
	if err != nil {
		t.Fatal(err)
	}
	return db, admin, a, b
}

// hiddenFrom reports whether the policy of rel shows no row at all to a
// context of role, even of its own organisation: the live events (00024)
// are for ORG_ADMIN, HR and ADMIN only.
func hiddenFrom(rel string, role postgres.AppRole) bool {
	return rel == "public.dashboard_events" && (role == postgres.AppDepartmentLead || role == postgres.AppEmployee)
}

// asRole is a database role together with the pool connected as it.
type asRole struct {
	name string
	pool *pgxpool.Pool
}

func connectRoles(ctx context.Context, t *testing.T, db *pgtest.Database) []asRole {
	t.Helper()
	var out []asRole
	for _, r := range []struct{ name, url string }{{postgres.RoleDashboard, db.DashboardURL}, {postgres.RoleIngest, db.IngestURL}, {postgres.RoleAdmin, db.PlatformAdminURL}} {
		p, err := postgres.Connect(ctx, r.url, 4, pg.ContextKey())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		out = append(out, asRole{name: r.name, pool: p})
	}
	return out
}

// TestTwoOrganisationsSeeZeroRowsOfEachOther seeds two organisations
// identically and, for every tenant table and view, every database role and
// every application role, checks that no row of the other organisation can
// be read, updated or deleted, and that no context reads nothing.
func TestTwoOrganisationsSeeZeroRowsOfEachOther(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, admin, a, b := seedTwo(ctx, t)
	relations := tenantRelations(ctx, t, admin)
	roles := connectRoles(ctx, t, db)
	orgs := []struct {
		self, other int64
	}{{a.OrganizationID, b.OrganizationID}, {b.OrganizationID, a.OrganizationID}}

	for _, role := range roles {
		readable := 0
		for _, rel := range relations {
			var canSelect, canUpdate, canDelete bool
			if err := role.pool.QueryRow(ctx, `SELECT has_table_privilege($1::oid, 'SELECT'), has_table_privilege($1::oid, 'UPDATE'), has_table_privilege($1::oid, 'DELETE')`,
				rel.oid).Scan(&canSelect, &canUpdate, &canDelete); err != nil {
				t.Fatal(err)
			}
			if !canSelect {
				continue
			}
			readable++
			for _, appRole := range postgres.AppRoles() {
				if appRole == postgres.AppAdmin {
					continue
				}
				for _, o := range orgs {
					name := fmt.Sprintf("%s/%s/%s/org%d", role.name, appRole, rel.name, o.self)
					// A lead or employee reads only its scope (00022;
					// scopes_test.go checks what exactly): here it gets the
					// seeded department or employee, and seeing none of its
					// own rows of a relation is no error.
					tenant := postgres.Tenant{OrganizationID: o.self, Role: appRole}
					narrowed := appRole == postgres.AppDepartmentLead || appRole == postgres.AppEmployee
					if narrowed {
						tenant.Scope = seededScope(appRole, a, b, o.self)
					}
					err := postgres.InTenant(ctx, role.pool, tenant, func(tx pgx.Tx) error {
						var own, foreign int
						q := fmt.Sprintf(`SELECT count(*) FILTER (WHERE %[2]s = $1), count(*) FILTER (WHERE %[2]s IS DISTINCT FROM $1 AND %[2]s IS NOT NULL) FROM %[1]s`, rel.name, rel.orgCol)
						if err := tx.QueryRow(ctx, q, o.self).Scan(&own, &foreign); err != nil {
							return err
						}
						if hiddenFrom(rel.name, appRole) {
							if own != 0 || foreign != 0 {
								return fmt.Errorf("sees %d own and %d foreign rows, want none (role-restricted)", own, foreign)
							}
							return nil
						}
						if own == 0 && !narrowed {
							return errors.New("sees none of its own rows (seed or policy is wrong)")
						}
						if foreign != 0 {
							return fmt.Errorf("sees %d rows of another organisation", foreign)
						}
						if rel.isView {
							return nil
						}
						if canUpdate {
							tag, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %[2]s = %[2]s WHERE %[3]s = $1`, rel.name, rel.touchCol, rel.orgCol), o.other)
							if err != nil {
								return fmt.Errorf("update other organisation: %w", err)
							}
							if tag.RowsAffected() != 0 {
								return fmt.Errorf("updated %d rows of another organisation", tag.RowsAffected())
							}
						}
						if canDelete {
							tag, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE %s = $1`, rel.name, rel.orgCol), o.other)
							if err != nil {
								return fmt.Errorf("delete other organisation: %w", err)
							}
							if tag.RowsAffected() != 0 {
								return fmt.Errorf("deleted %d rows of another organisation", tag.RowsAffected())
							}
						}
						return nil
					})
					if err != nil {
						t.Errorf("%s: %v", name, err)
					}
				}
			}
			// No context at all: zero rows, no error.
			err := postgres.InTenant(ctx, role.pool, postgres.Tenant{}, func(tx pgx.Tx) error {
				var n int
				return tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s IS NOT NULL`, rel.name, rel.orgCol)).Scan(&n)
			})
			if err != nil {
				t.Errorf("%s/no context/%s: %v", role.name, rel.name, err)
			}
			var n int
			if err := role.pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s IS NOT NULL`, rel.name, rel.orgCol)).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s/no transaction/%s: %d rows, err %v; want 0 rows, no error", role.name, rel.name, n, err)
			}
			// ADMIN sees both organisations, as the admin login role only;
			// under any other role a signed ADMIN context sees nothing.
			err = postgres.InTenant(ctx, role.pool, postgres.Tenant{Role: postgres.AppAdmin}, func(tx pgx.Tx) error {
				var orgsSeen int
				if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(DISTINCT %s) FROM %s WHERE %[1]s IN ($1, $2)`, rel.orgCol, rel.name), a.OrganizationID, b.OrganizationID).Scan(&orgsSeen); err != nil {
					return err
				}
				if want := map[bool]int{true: 2, false: 0}[role.name == postgres.RoleAdmin]; orgsSeen != want {
					return fmt.Errorf("ADMIN sees %d organisations, want %d", orgsSeen, want)
				}
				return nil
			})
			if err != nil {
				t.Errorf("%s/ADMIN/%s: %v", role.name, rel.name, err)
			}
			// Forged contexts of every kind see and change nothing.
			for _, f := range forgeries(t, a.OrganizationID, b.OrganizationID) {
				if err := forgedSeesNothing(ctx, role.pool, rel, f, canUpdate, canDelete); err != nil {
					t.Errorf("%s/forged %s/%s: %v", role.name, f.name, rel.name, err)
				}
			}
		}
		if readable == 0 {
			t.Errorf("role %s can read no tenant relation; the test proves nothing", role.name)
		}
		t.Logf("role %s: %d tenant relations checked", role.name, readable)
	}

	// Writing a row into another organisation is refused.
	dash := roles[0].pool
	err := postgres.InTenant(ctx, dash, postgres.Tenant{OrganizationID: a.OrganizationID, Role: postgres.AppOrgAdmin}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO departments (organization_id, name) VALUES ($1, 'Intruders')`, b.OrganizationID)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("insert into another organisation: err = %v, want a row-level security violation", err)
	}
}

// TestOneConnectionPoolNeverCarriesContext alternates organisation A,
// organisation B and no context over a pool of exactly one connection.
func TestOneConnectionPoolNeverCarriesContext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, a, b := seedTwo(ctx, t)
	pool, err := postgres.Connect(ctx, db.DashboardURL, 1, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var backend int
	if err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}

	type step struct {
		tenant postgres.Tenant
		want   int64 // organisation whose rows must be seen; 0 = none
		fail   bool  // fn returns an error: the transaction rolls back
	}
	steps := []step{
		{postgres.Tenant{OrganizationID: a.OrganizationID, Role: postgres.AppHR}, a.OrganizationID, false},
		{postgres.Tenant{OrganizationID: b.OrganizationID, Role: postgres.AppOrgAdmin}, b.OrganizationID, false},
		{postgres.Tenant{}, 0, false},
		{postgres.Tenant{OrganizationID: a.OrganizationID, Role: postgres.AppEmployee, Scope: fmt.Sprintf("employee:%d", a.EmployeeID)}, a.OrganizationID, true},
		{postgres.Tenant{}, 0, false},
		{postgres.Tenant{OrganizationID: b.OrganizationID, Role: postgres.AppDepartmentLead, Scope: fmt.Sprintf("department:%d", b.DepartmentID)}, b.OrganizationID, true},
	}
	errBoom := errors.New("boom")
	for round := 0; round < 20; round++ {
		for i, s := range steps {
			err := postgres.InTenant(ctx, pool, s.tenant, func(tx pgx.Tx) error {
				var pid int
				var org, role string
				if err := tx.QueryRow(ctx, `SELECT pg_backend_pid(), coalesce(current_setting('app.current_organization_id', true), ''),
					coalesce(current_setting('app.current_role', true), '')`).Scan(&pid, &org, &role); err != nil {
					return err
				}
				if pid != backend {
					return fmt.Errorf("pool used backend %d, want the single backend %d", pid, backend)
				}
				wantOrg := ""
				if s.want != 0 {
					wantOrg = fmt.Sprint(s.want)
				}
				if org != "" || role != "" {
					return fmt.Errorf("plain settings org=%q role=%q are set; only app.tenant should be", org, role)
				}
				if err := tx.QueryRow(ctx, `SELECT coalesce(app.org_id()::text, ''), coalesce(app.app_role(), '')`).Scan(&org, &role); err != nil {
					return err
				}
				if org != wantOrg || role != string(s.tenant.Role) {
					return fmt.Errorf("context org=%q role=%q, want org=%q role=%q", org, role, wantOrg, s.tenant.Role)
				}
				var total, mine int64
				if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM employees) + (SELECT count(*) FROM monitoring_read.active_windows),
					(SELECT count(*) FROM employees WHERE organization_id = $1) + (SELECT count(*) FROM monitoring_read.active_windows WHERE organization_id = $1)`,
					s.want).Scan(&total, &mine); err != nil {
					return fmt.Errorf("query: %w", err)
				}
				if s.want == 0 && total != 0 {
					return fmt.Errorf("no context sees %d rows, want 0", total)
				}
				if s.want != 0 && (total == 0 || total != mine) {
					return fmt.Errorf("sees %d rows of which %d its own", total, mine)
				}
				if s.fail {
					return errBoom
				}
				return nil
			})
			if s.fail && !errors.Is(err, errBoom) {
				t.Fatalf("round %d step %d: err = %v, want the function's error", round, i, err)
			}
			if !s.fail && err != nil {
				t.Fatalf("round %d step %d: %v", round, i, err)
			}
			// Between requests, the connection carries no context.
			var n int
			if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM employees) + (SELECT count(*) FROM monitoring_read.active_windows)`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("round %d step %d: outside a transaction: %d rows, err %v; want 0, no error", round, i, n, err)
			}
		}
	}
}
