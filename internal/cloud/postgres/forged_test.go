package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// forgery is one way SQL running as a runtime role might set a tenant
// context the application did not sign: session is run on the connection
// before the transaction (and undone by RESET ALL after it), local first
// thing inside it.
type forgery struct {
	name    string
	session []string
	local   []string
}

// forgeries lists forged contexts aimed at organisation other (and at the
// all-organisations scope), given that the attacker may have seen a valid
// context of organisation self.
func forgeries(t *testing.T, self, other int64) []forgery {
	t.Helper()
	key := pg.ContextKey()
	future := time.Now().Add(time.Hour)
	sign := func(k postgres.ContextKey, tn postgres.Tenant, exp time.Time) string {
		v, err := k.Sign(tn, exp)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	lit := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	setTenant := func(v string) string { return "SELECT set_config('app.tenant', " + lit(v) + ", true)" }
	fields := func(v string) []string { return strings.Split(v, "|") }
	join := func(f []string) string { return strings.Join(f, "|") }

	ownValid := sign(key, postgres.Tenant{OrganizationID: self, Role: postgres.AppEmployee}, future)
	// Another organisation's id in a context signed for self.
	replayed := fields(ownValid)
	replayed[2] = fmt.Sprint(other)
	// A role raised to ADMIN in a context signed as EMPLOYEE.
	raised := fields(ownValid)
	raised[3] = string(postgres.AppAdmin)
	// A made-up signature.
	madeUp := fields(ownValid)
	madeUp[2], madeUp[3] = fmt.Sprint(other), string(postgres.AppAdmin)
	madeUp[8] = strings.Repeat("0", 64)
	// The same fields under another key of the same id, and an unknown id.
	wrongKey, err := postgres.GenerateContextKey(key.ID())
	if err != nil {
		t.Fatal(err)
	}
	unknownKey, err := postgres.GenerateContextKey("attacker")
	if err != nil {
		t.Fatal(err)
	}
	adminOther := postgres.Tenant{OrganizationID: other, Role: postgres.AppAdmin}
	expired := sign(key, adminOther, time.Now().Add(-time.Second))
	// A valid signature with a longer expiry glued on.
	extended := fields(expired)
	extended[7] = fmt.Sprint(future.Unix())

	old := []string{
		fmt.Sprintf("SET app.current_organization_id = '%d'", other),
		`SET app."current_role" = 'ADMIN'`,
	}
	oldLocal := []string{
		fmt.Sprintf("SET LOCAL app.current_organization_id = '%d'", other),
		`SET LOCAL app."current_role" = 'ADMIN'`,
	}
	return []forgery{
		{name: "session SET of the old settings", session: old},
		{name: "SET LOCAL of the old settings", local: oldLocal},
		{name: "set_config of the old settings", local: []string{
			fmt.Sprintf("SELECT set_config('app.current_organization_id', '%d', true), set_config('app.current_role', 'ADMIN', true)", other)}},
		{name: "unsigned app.tenant", local: []string{setTenant(fmt.Sprintf("%d", other))}},
		{name: "made-up signature", local: []string{setTenant(join(madeUp))}},
		{name: "own context replayed for another organisation", local: []string{setTenant(join(replayed))}},
		{name: "own context raised to ADMIN", local: []string{setTenant(join(raised))}},
		{name: "expired ADMIN context", local: []string{setTenant(expired)}},
		{name: "expired context with a new expiry", local: []string{setTenant(join(extended))}},
		{name: "wrong key, same key id", local: []string{setTenant(sign(wrongKey, adminOther, future))}},
		{name: "unknown key id", local: []string{setTenant(sign(unknownKey, adminOther, future))}},
		{name: "session SET of a wrong-key context", session: []string{"SET app.tenant = " + lit(sign(wrongKey, adminOther, future))}},
		{name: "SET LOCAL of a made-up context", local: []string{"SET LOCAL app.tenant = " + lit(join(madeUp))}},
	}
}

// forgedSeesNothing applies f on a connection of pool and checks that no
// tenant row of rel is visible, updatable or deletable. Everything is
// rolled back.
func forgedSeesNothing(ctx context.Context, pool *pgxpool.Pool, rel tenantRelation, f forgery, canUpdate, canDelete bool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "RESET ALL") }()
	for _, q := range f.session {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for _, q := range f.local {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	var n int
	if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s IS NOT NULL`, rel.name, rel.orgCol)).Scan(&n); err != nil {
		return fmt.Errorf("select: %w", err)
	}
	if n != 0 {
		return fmt.Errorf("sees %d rows", n)
	}
	if rel.isView {
		return nil
	}
	if canUpdate {
		tag, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %[2]s = %[2]s`, rel.name, rel.touchCol))
		if err != nil {
			return fmt.Errorf("update: %w", err)
		}
		if tag.RowsAffected() != 0 {
			return fmt.Errorf("updated %d rows", tag.RowsAffected())
		}
	}
	if canDelete {
		tag, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s`, rel.name))
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		if tag.RowsAffected() != 0 {
			return fmt.Errorf("deleted %d rows", tag.RowsAffected())
		}
	}
	return nil
}

// TestSignedContextVerifiedOncePerStatement checks with EXPLAIN that a
// policy's and a view's verification runs as an InitPlan (once per
// statement), not per row.
func TestSignedContextVerifiedOncePerStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, a, _ := seedTwo(ctx, t)
	pool, err := postgres.Connect(ctx, db.DashboardURL, 1, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, q := range []string{`SELECT * FROM employees`, `SELECT * FROM monitoring_read.active_windows`,
		`SELECT * FROM monitoring_read.activity_hourly`} {
		err := postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: a.OrganizationID, Role: postgres.AppHR}, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, "EXPLAIN (VERBOSE, COSTS OFF) "+q)
			if err != nil {
				return err
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			plan := strings.Join(lines, "\n")
			if !strings.Contains(plan, "InitPlan") || !strings.Contains(plan, "app.org_id()") {
				return fmt.Errorf("plan verifies the context outside an InitPlan:\n%s", plan)
			}
			for _, l := range lines {
				if strings.Contains(l, "Filter:") && strings.Contains(l, "app.org_id()") && !strings.Contains(l, "$") {
					return fmt.Errorf("a filter calls app.org_id() per row:\n%s", plan)
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// TestAuditRowsCarryTheVerifiedActor: audit rows are written only by
// app.audit(), stamped from the signed context; a direct INSERT is refused
// and an unverified context is recorded as such.
func TestAuditRowsCarryTheVerifiedActor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, admin, a, b := seedTwo(ctx, t)
	for _, r := range []struct{ role, url string }{{postgres.RoleDashboard, db.DashboardURL}, {postgres.RoleIngest, db.IngestURL}} {
		pool, err := postgres.Connect(ctx, r.url, 1, pg.ContextKey())
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		tenant := postgres.Tenant{OrganizationID: a.OrganizationID, Role: postgres.AppHR, UserID: a.UserID, Actor: "hr@alpha.test"}
		// A direct insert, whatever it claims, is refused.
		err = postgres.InTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO audit_log (organization_id, actor, action, resource_type) VALUES ($1, 'CEO', 'x', 'y')`, a.OrganizationID)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s: direct audit insert: err = %v, want permission denied", r.role, err)
		}
		// Through app.audit: stamped from the context; another
		// organisation is refused.
		var id int64
		err = postgres.InTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT app.audit(NULL, 'probe', 'test', $1, 'allowed', '{}')`, r.role).Scan(&id)
		})
		if err != nil {
			t.Fatalf("%s: app.audit: %v", r.role, err)
		}
		var org, user *int64
		var actor string
		if err := admin.QueryRow(ctx, `SELECT organization_id, actor_user_id, actor FROM audit_log WHERE id = $1`, id).Scan(&org, &user, &actor); err != nil {
			t.Fatal(err)
		}
		if org == nil || *org != a.OrganizationID || user == nil || *user != a.UserID || actor != "hr@alpha.test" {
			t.Errorf("%s: audit row org=%v user=%v actor=%q, want the context's %d/%d/hr@alpha.test", r.role, org, user, actor, a.OrganizationID, a.UserID)
		}
		err = postgres.InTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT app.audit($1, 'probe', 'test', NULL, 'allowed', '{}')`, b.OrganizationID)
			return err
		})
		if err == nil {
			t.Errorf("%s: audit row for another organisation accepted", r.role)
		}
		// A forged context: the row lands without organisation or user,
		// marked unverified.
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('app.tenant', $1, true)`, fmt.Sprintf("v1|test|%d|ADMIN|%d||%x|9999999999|%s", b.OrganizationID, b.UserID, "CEO", strings.Repeat("ab", 32))); err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, `SELECT app.audit(NULL, 'probe', 'test', NULL, 'allowed', '{}')`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := admin.QueryRow(ctx, `SELECT organization_id, actor_user_id, actor FROM audit_log WHERE id = $1`, id).Scan(&org, &user, &actor); err != nil {
			t.Fatal(err)
		}
		if org != nil || user != nil || actor != "unverified:"+r.role {
			t.Errorf("%s: forged-context audit row org=%v user=%v actor=%q, want none/none/unverified:%s", r.role, org, user, actor, r.role)
		}
	}
}

// TestIngestRoleCannotTouchOtherOrganisationsTimeSeries: the ingest role
// has no INSERT, SELECT or DELETE on the time series (00020: it inserts
// through the bounded definer functions only); the insert functions take
// rows of its verified organisation and refuse another organisation's, and
// any organisation's without a verified context, whatever the context.
func TestIngestRoleCannotTouchOtherOrganisationsTimeSeries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, admin, a, b := seedTwo(ctx, t)
	pool, err := postgres.Connect(ctx, db.IngestURL, 1, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, schema := range []string{"monitoring", "monitoring_fallback"} {
		// Direct inserts: refused, even for the verified organisation.
		direct := fmt.Sprintf(`INSERT INTO %s.user_sessions (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
			VALUES (gen_random_uuid(), $1, $2, 99, 'a', 'c', 'S', 'login', now())`, schema)
		if err := postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: a.OrganizationID}, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, direct, a.OrganizationID, a.GatewayID)
			return err
		}); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s: direct insert for the verified organisation: err = %v, want permission denied", schema, err)
		}
		// Through the function: the verified organisation's row is taken.
		insert := `SELECT monitoring.insert_user_sessions($1, $2, $3, ARRAY[gen_random_uuid()], ARRAY[99::bigint], ARRAY['a'], ARRAY['c'],
			ARRAY['S'], ARRAY['login'], ARRAY[now()])`
		var n int
		if err := postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: a.OrganizationID}, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, insert, schema, a.OrganizationID, a.GatewayID).Scan(&n)
		}); err != nil || n != 1 {
			t.Errorf("%s: insert_user_sessions for the verified organisation: %d, %v; want 1 row inserted", schema, n, err)
		}
		// Another organisation's rows: refused, in its own context, in none
		// and in a forged one; and without a verified context, its own too.
		for _, f := range append([]forgery{{name: "own verified context"}, {name: "no context"}}, forgeries(t, a.OrganizationID, b.OrganizationID)...) {
			orgs := []int64{b.OrganizationID}
			if f.name != "own verified context" {
				orgs = append(orgs, a.OrganizationID)
			}
			for _, org := range orgs {
				err := func() error {
					conn, err := pool.Acquire(ctx)
					if err != nil {
						return err
					}
					defer conn.Release()
					defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "RESET ALL") }()
					for _, q := range f.session {
						if _, err := conn.Exec(ctx, q); err != nil {
							return err
						}
					}
					run := func(tx pgx.Tx) error {
						for _, q := range f.local {
							if _, err := tx.Exec(ctx, q); err != nil {
								return err
							}
						}
						_, err := tx.Exec(ctx, insert, schema, org, b.GatewayID)
						return err
					}
					if f.name == "own verified context" {
						return postgres.InTenant(ctx, conn, postgres.Tenant{OrganizationID: a.OrganizationID}, run)
					}
					return pgx.BeginFunc(ctx, conn, run)
				}()
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "42501" || pe.Message != `new row violates row-level security policy for table "user_sessions"` {
					t.Errorf("%s/%s: insert_user_sessions for organisation %d: err = %v, want 42501, a row-level security violation", schema, f.name, org, err)
				}
			}
		}
		var stored int
		if err := admin.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.user_sessions WHERE seq = 99`, schema)).Scan(&stored); err != nil || stored != 1 {
			t.Errorf("%s: %d rows stored with seq 99 (%v), want the verified organisation's 1", schema, stored, err)
		}
		// No read, no delete, in any context.
		for _, q := range []string{
			fmt.Sprintf(`SELECT count(*) FROM %s.user_sessions`, schema),
			fmt.Sprintf(`DELETE FROM %s.user_sessions`, schema),
		} {
			err := postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: b.OrganizationID}, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, q)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("ingest: %s: err = %v, want permission denied", q, err)
			}
		}
	}
	// The re-sync's functions act only in the verified organisation.
	if _, err := admin.Exec(ctx, `INSERT INTO monitoring_fallback.user_sessions (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
		VALUES (gen_random_uuid(), $1, $2, 7, 'a', 'c', 'S', 'login', now())`, b.OrganizationID, b.GatewayID); err != nil {
		t.Fatal(err)
	}
	var chunk string
	var deleted int64
	err = postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: a.OrganizationID}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT monitoring.fallback_chunk('user_sessions', current_date, 5000)::text`).Scan(&chunk); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT monitoring.fallback_delete('user_sessions', array_agg(id), array_agg(datetime))
			FROM (SELECT (r->>'id')::uuid AS id, (r->>'datetime')::timestamptz AS datetime
			      FROM jsonb_array_elements(monitoring.fallback_chunk('user_sessions', current_date, 5000)) r) k`).Scan(&deleted)
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(chunk, fmt.Sprintf(`"organization_id": %d`, b.OrganizationID)) {
		t.Errorf("fallback_chunk in organisation %d returned organisation %d's rows: %s", a.OrganizationID, b.OrganizationID, chunk)
	}
	var left int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM monitoring_fallback.user_sessions WHERE organization_id = $1`, b.OrganizationID).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 1 {
		t.Errorf("organisation %d has %d fallback rows left after organisation %d's delete, want 1", b.OrganizationID, left, a.OrganizationID)
	}
	// Without a verified context they return nothing and delete nothing.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL app.current_organization_id = '%d'`, b.OrganizationID)); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT monitoring.fallback_chunk('user_sessions', current_date, 5000)::text`).Scan(&chunk); err != nil {
		t.Fatal(err)
	}
	if chunk != "[]" {
		t.Errorf("fallback_chunk without a verified context: %s, want []", chunk)
	}
	var ids []string
	var times []time.Time
	if err := admin.QueryRow(ctx, `SELECT array_agg(id::text), array_agg(datetime) FROM monitoring_fallback.user_sessions WHERE organization_id = $1`,
		b.OrganizationID).Scan(&ids, &times); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT monitoring.fallback_delete('user_sessions', $1::uuid[], $2)`, ids, times).Scan(&deleted); err != nil {
		t.Fatal(err)
	}
	if deleted != 0 {
		t.Errorf("fallback_delete without a verified context deleted %d rows", deleted)
	}
}
