package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// The reports' functions (00026).

// testOrganizationsCheckTimeZone: an organisation's time zone must be a
// zone the server knows; a bad one is refused naming the column.
func testOrganizationsCheckTimeZone(t *testing.T, f *fnDB) {
	_, err := f.admin.Exec(f.ctx, `UPDATE organizations SET time_zone = 'Mars/Olympus_Mons' WHERE id = $1`, f.a.OrganizationID)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23514" || pe.ColumnName != "time_zone" || pe.ConstraintName != "organizations_time_zone_check" {
		t.Fatalf("bad zone: %v (%+v), want 23514 naming time_zone", err, pe)
	}
	_, err = f.admin.Exec(f.ctx, `INSERT INTO organizations (name, slug, time_zone) VALUES ('X', 'x-tz', 'Nowhere/Else')`)
	if !errors.As(err, &pe) || pe.Code != "23514" || pe.ColumnName != "time_zone" {
		t.Fatalf("bad zone on insert: %v", err)
	}
	f.exec(`UPDATE organizations SET time_zone = 'Europe/Berlin' WHERE id = $1`, f.a.OrganizationID)
	if got := f.one(`SELECT time_zone FROM organizations WHERE id = $1`, f.a.OrganizationID); got != "Europe/Berlin" {
		t.Errorf("time zone %s", got)
	}
	if got := f.one(`SELECT time_zone FROM organizations WHERE id = $1`, f.b.OrganizationID); got != "UTC" {
		t.Errorf("default time zone %s", got)
	}
}

// markWindow inserts one active window of organisation o's sid at at, for
// dur seconds, through the insert function into schema, as the ingest role.
func (f *fnDB) markWindow(schema string, o int64, gw uuid.UUID, sid string, at time.Time, dur int) uuid.UUID {
	f.t.Helper()
	id := uuid.Must(uuid.NewV7())
	f.rows(f.ingest, org(o), `SELECT monitoring.insert_active_windows($1, $2, $3, ARRAY[$4::uuid], ARRAY[1::bigint], ARRAY['a'], ARRAY['PC'],
		ARRAY[$5::text], ARRAY['t'], ARRAY['code.exe'], ARRAY[NULL::text], ARRAY[$6::timestamptz], ARRAY[$7::integer])`,
		schema, o, gw, id, sid, at, dur)
	return id
}

// dirty lists the dirty keys of organisation o as "sid@hour" (UTC).
func (f *fnDB) dirty(o int64) []string {
	f.t.Helper()
	return f.rows(f.admin, none, `SELECT user_sid || '@' || to_char(hour AT TIME ZONE 'UTC', 'MM-DD HH24') FROM monitoring.activity_dirty
		WHERE organization_id = $1 ORDER BY user_sid, hour`, o)
}

// TestActivityDirtyMarks: the insert functions mark every UTC hour that
// what they inserted touches, in either schema; duplicates and user
// sessions mark nothing; the re-sync's copy marks what it copied.
func TestActivityDirtyMarks(t *testing.T) {
	t.Parallel()
	f := newFnDB(t)
	a := f.a
	day := time.Now().UTC().AddDate(0, 0, -2).Truncate(24 * time.Hour)
	at := day.Add(10*time.Hour + 50*time.Minute)
	f.exec(`SELECT monitoring.ensure_day_partitions(s, ARRAY['active_windows','visited_sites','user_sessions'], ARRAY[$1::date, $1::date + 1]) FROM unnest(ARRAY['monitoring','monitoring_fallback']) s`, day)
	f.exec(`DELETE FROM monitoring.activity_dirty`)
	h := func(hour int) string { return day.Add(time.Duration(hour) * time.Hour).Format("01-02 15") }
	id := f.markWindow("monitoring", a.OrganizationID, a.GatewayID, "S-A", at, 80*60)
	equal(t, "10:50 + 80 min", f.dirty(a.OrganizationID), []string{"S-A@" + h(10), "S-A@" + h(11), "S-A@" + h(12)})
	f.exec(`DELETE FROM monitoring.activity_dirty`)
	// A duplicate: nothing inserted, nothing marked.
	f.rows(f.ingest, org(a.OrganizationID), `SELECT monitoring.insert_active_windows('monitoring', $1, $2, ARRAY[$3::uuid], ARRAY[1::bigint], ARRAY['a'], ARRAY['PC'],
		ARRAY['S-A'], ARRAY['t'], ARRAY['code.exe'], ARRAY[NULL::text], ARRAY[$4::timestamptz], ARRAY[60])`, a.OrganizationID, a.GatewayID, id, at)
	equal(t, "duplicate", f.dirty(a.OrganizationID), nil)
	// The fallback marks too; an interval ending on the hour marks it (harmless).
	f.markWindow("monitoring_fallback", a.OrganizationID, a.GatewayID, "S-B", at.Add(13*time.Hour), 0)
	equal(t, "fallback", f.dirty(a.OrganizationID), []string{"S-B@" + h(23)})
	f.exec(`DELETE FROM monitoring.activity_dirty`)
	// Sites mark; sessions do not.
	f.rows(f.ingest, org(a.OrganizationID), `SELECT monitoring.insert_visited_sites('monitoring', $1, $2, ARRAY[$3::uuid], ARRAY[1::bigint], ARRAY['a'], ARRAY['PC'],
		ARRAY['S-C'], ARRAY['https://x.test/'], ARRAY['t'], ARRAY[$4::timestamptz], ARRAY[10])`, a.OrganizationID, a.GatewayID, uuid.Must(uuid.NewV7()), at)
	f.rows(f.ingest, org(a.OrganizationID), `SELECT monitoring.insert_user_sessions('monitoring', $1, $2, ARRAY[$3::uuid], ARRAY[1::bigint], ARRAY['a'], ARRAY['PC'],
		ARRAY['S-D'], ARRAY['login'], ARRAY[$4::timestamptz])`, a.OrganizationID, a.GatewayID, uuid.Must(uuid.NewV7()), at)
	equal(t, "site, session", f.dirty(a.OrganizationID), []string{"S-C@" + h(10)})
	f.exec(`DELETE FROM monitoring.activity_dirty`)
	// The re-sync's copy marks what it inserted.
	rows := f.one(`SELECT jsonb_agg(to_jsonb(w))::text FROM monitoring_fallback.active_windows w WHERE user_sid = 'S-B'`)
	equal(t, "resync", f.rows(f.ingest, org(a.OrganizationID), `SELECT monitoring.resync_insert('active_windows', $1::jsonb)`, rows), []string{"1"})
	equal(t, "resync marks", f.dirty(a.OrganizationID), []string{"S-B@" + h(23)})
	equal(t, "B untouched", f.dirty(f.b.OrganizationID), nil) // (the seed's mark deleted above)
}

// testActivityClaim: the dirty hours of at most n sids no other
// transaction holds, deleted in the claiming transaction; a concurrent
// claimer skips them.
func testActivityClaim(t *testing.T, f *fnDB) {
	a := f.a
	f.exec(`DELETE FROM monitoring.activity_dirty`) // the seed's
	at := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	f.markWindow("monitoring", a.OrganizationID, a.GatewayID, "S-1", at, 3600)
	f.markWindow("monitoring", a.OrganizationID, a.GatewayID, "S-2", at, 60)
	f.markWindow("monitoring", f.b.OrganizationID, f.b.GatewayID, "S-1", at, 60)
	first, err := f.ingest.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback(context.Background())
	claim := func(tx pgx.Tx, n int) []string {
		t.Helper()
		rows, err := tx.Query(f.ctx, `SELECT organization_id || '/' || user_sid || '/' || (extract(epoch from hour - $2::timestamptz) / 3600)::int FROM monitoring.activity_claim($1, now())`, n, at)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	lo, hi := a.OrganizationID, f.b.OrganizationID
	equal(t, "first claim", claim(first, 1), []string{fmt.Sprintf("%d/S-1/0", lo), fmt.Sprintf("%d/S-1/1", lo)})
	second, err := f.ingest.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Rollback(context.Background())
	equal(t, "concurrent claim skips the held sid", claim(second, 10), []string{fmt.Sprintf("%d/S-2/0", lo), fmt.Sprintf("%d/S-1/0", hi)})
	if err := first.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := second.Rollback(f.ctx); err != nil {
		t.Fatal(err)
	}
	equal(t, "left after the commit and the rollback", f.dirty(lo), []string{"S-2@" + at.Format("01-02 15")})
	f.refused(f.ingest, none, invalidParameter, "between 1 and 10000", `SELECT count(*) FROM monitoring.activity_claim(0, now())`)
	f.refused(f.dashboard, org(lo), noPrivilege, "permission denied", `SELECT count(*) FROM monitoring.activity_claim(1, now())`)
}

// testActivityTimeZone: the organisation's zone, UTC for an unknown one.
// testActivityBacklog: the dirty hours before the bound, of every
// organisation, their pairs and the oldest; for the ingest role only.
func testActivityBacklog(t *testing.T, f *fnDB) {
	f.exec(`DELETE FROM monitoring.activity_dirty`) // the seed's
	const call = `SELECT hours || ' ' || sids || ' ' || coalesce(round(extract(epoch from $2::timestamptz - oldest) / 3600)::text, '-') FROM monitoring.activity_backlog($1)`
	now := time.Now().UTC().Truncate(time.Hour)
	equal(t, "empty", f.rows(f.ingest, none, call, now, now), []string{"0 0 -"})
	for _, d := range []int{0, 1} {
		f.exec(`SELECT monitoring.ensure_day_partitions('monitoring', ARRAY['active_windows'], ARRAY[($1::timestamptz AT TIME ZONE 'UTC')::date])`, now.AddDate(0, 0, -d))
	}
	f.markWindow("monitoring", f.a.OrganizationID, f.a.GatewayID, "S-1", now.Add(-5*time.Hour), 7200) // hours -5, -4, -3
	f.markWindow("monitoring", f.b.OrganizationID, f.b.GatewayID, "S-1", now.Add(-2*time.Hour), 60)
	f.markWindow("monitoring", f.a.OrganizationID, f.a.GatewayID, "S-2", now, 60) // the current hour
	equal(t, "before now", f.rows(f.ingest, none, call, now, now), []string{"4 2 5"})
	equal(t, "before an hour later", f.rows(f.ingest, none, call, now.Add(time.Hour), now), []string{"5 3 5"})
	f.refused(f.dashboard, org(f.a.OrganizationID), noPrivilege, "permission denied", `SELECT count(*) FROM monitoring.activity_backlog(now())`)
}

func testActivityTimeZone(t *testing.T, f *fnDB) {
	f.exec(`UPDATE organizations SET time_zone = 'Asia/Tashkent' WHERE id = $1`, f.a.OrganizationID)
	equal(t, "A", f.rows(f.ingest, none, `SELECT monitoring.activity_time_zone($1)`, f.a.OrganizationID), []string{"Asia/Tashkent"})
	equal(t, "B", f.rows(f.ingest, none, `SELECT monitoring.activity_time_zone($1)`, f.b.OrganizationID), []string{"UTC"})
	equal(t, "unknown", f.rows(f.ingest, none, `SELECT monitoring.activity_time_zone(-1)`), []string{"UTC"})
	f.refused(f.dashboard, org(f.a.OrganizationID), noPrivilege, "permission denied", `SELECT monitoring.activity_time_zone(1)`)
}

// testActivitySource: the activity rows of one organisation's sid that
// may overlap the range, from the store and the fallback (a row in both
// once), 7 days back at most; ranges over 31 days refused.
func testActivitySource(t *testing.T, f *fnDB) {
	a := f.a
	now := time.Now().UTC().Truncate(time.Second)
	for _, d := range []int{0, 1, 2, 3} {
		f.exec(`SELECT monitoring.ensure_day_partitions(s, ARRAY['active_windows','visited_sites'], ARRAY[($1::timestamptz AT TIME ZONE 'UTC')::date]) FROM unnest(ARRAY['monitoring','monitoring_fallback']) s`, now.AddDate(0, 0, -d))
	}
	f.markWindow("monitoring", a.OrganizationID, a.GatewayID, "S-9", now.Add(-time.Hour), 60)
	f.markWindow("monitoring_fallback", a.OrganizationID, a.GatewayID, "S-9", now.Add(-2*time.Hour), 60)
	both := f.markWindow("monitoring_fallback", a.OrganizationID, a.GatewayID, "S-9", now.Add(-3*time.Hour), 60)
	f.exec(`INSERT INTO monitoring.active_windows SELECT * FROM monitoring_fallback.active_windows WHERE id = $1`, both)
	f.markWindow("monitoring", a.OrganizationID, a.GatewayID, "S-9", now.Add(-50*time.Hour), 60)
	f.markWindow("monitoring", f.b.OrganizationID, f.b.GatewayID, "S-9", now.Add(-time.Hour), 60)
	const call = `SELECT kind || ' ' || round(extract(epoch from $4::timestamptz - datetime) / 3600) FROM monitoring.activity_source($1, $2, $3, $4) ORDER BY datetime`
	equal(t, "rows", f.rows(f.ingest, none, call, a.OrganizationID, "S-9", now.Add(-24*time.Hour), now), []string{"window 50", "window 3", "window 2", "window 1"})
	equal(t, "other sid", f.rows(f.ingest, none, call, a.OrganizationID, "S-8", now.Add(-24*time.Hour), now), nil)
	f.refused(f.ingest, none, invalidParameter, "bad range", call, a.OrganizationID, "S-9", now.AddDate(0, 0, -40), now)
	f.refused(f.dashboard, org(a.OrganizationID), noPrivilege, "permission denied", call, a.OrganizationID, "S-9", now.Add(-time.Hour), now)
}

// testActivityStore: replaces one day's rollup, only under the caller's
// claim of the (organisation, sid).
func testActivityStore(t *testing.T, f *fnDB) {
	a := f.a
	const store = `SELECT monitoring.activity_store($1, 'S-5', '2026-03-02', 'UTC', $2, NULL, NULL, $3, $4, $5, $6, $7)`
	mask := make([]byte, 180)
	args := func(kinds ...string) []any {
		n := len(kinds)
		names, hosts, secs := make([]string, n), make([]string, n), make([]int64, n)
		for i := range kinds {
			names[i], hosts[i], secs[i] = fmt.Sprint("p", i), "", int64(i+1)
		}
		return []any{a.OrganizationID, mask, kinds, names, hosts, secs, secs}
	}
	f.refused(f.ingest, none, "55P03", "not claimed", store, args("window")...)
	f.markWindow("monitoring", a.OrganizationID, a.GatewayID, "S-5", time.Now().Add(-time.Hour), 60)
	run := func(kinds ...string) {
		t.Helper()
		tx, err := f.ingest.Begin(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background())
		if _, err := tx.Exec(f.ctx, `SELECT count(*) FROM monitoring.activity_claim(100, now())`); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(f.ctx, store, args(kinds...)...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	run("window", "site")
	usage := `SELECT kind || ':' || process_name || ':' || seconds FROM monitoring.activity_day_usage WHERE user_sid = 'S-5' ORDER BY 1`
	equal(t, "stored", f.rows(f.admin, none, usage), []string{"site:p1:2", "window:p0:1"})
	f.markWindow("monitoring", a.OrganizationID, a.GatewayID, "S-5", time.Now().Add(-time.Hour), 60)
	run("window")
	equal(t, "replaced", f.rows(f.admin, none, usage), []string{"window:p0:1"})
	equal(t, "one day row", f.rows(f.admin, none, `SELECT count(*) FROM monitoring.activity_days WHERE user_sid = 'S-5'`), []string{"1"})
	f.refused(f.dashboard, org(a.OrganizationID), noPrivilege, "permission denied", store, args("window")...)
}

// testOrganizationsTimeZoneChanged: a new zone marks every hour of the
// organisation's rolled-up days (in the old zone) dirty.
func testOrganizationsTimeZoneChanged(t *testing.T, f *fnDB) {
	a := f.a
	f.exec(`DELETE FROM monitoring.activity_dirty`)
	f.exec(`DELETE FROM monitoring.activity_days`) // the seed's
	f.exec(`INSERT INTO monitoring.activity_days (organization_id, user_sid, day, time_zone, active_minutes) VALUES ($1, 'S-7', '2026-03-02', 'UTC', $2)`,
		a.OrganizationID, make([]byte, 180))
	f.exec(`UPDATE organizations SET name = 'renamed' WHERE id = $1`, a.OrganizationID)
	equal(t, "other column", f.dirty(a.OrganizationID), nil)
	f.exec(`UPDATE organizations SET time_zone = 'Asia/Kolkata' WHERE id = $1`, a.OrganizationID)
	got := f.dirty(a.OrganizationID)
	if len(got) != 24 || got[0] != "S-7@03-02 00" || got[23] != "S-7@03-02 23" {
		t.Errorf("marked %v, want the 24 hours of 2026-03-02 UTC", got)
	}
	f.exec(`DELETE FROM monitoring.activity_dirty`)
	f.exec(`UPDATE monitoring.activity_days SET time_zone = 'Asia/Kolkata'`)
	f.exec(`UPDATE organizations SET time_zone = 'UTC' WHERE id = $1`, a.OrganizationID)
	got = f.dirty(a.OrganizationID)
	// 2026-03-02 in Kolkata (+05:30): 03-01 18:30 to 03-02 18:30 UTC, 25 hours touched.
	if len(got) != 25 || got[0] != "S-7@03-01 18" || got[24] != "S-7@03-02 18" {
		t.Errorf("marked %v, want 03-01 18 to 03-02 18", got)
	}
	equal(t, "B", f.dirty(f.b.OrganizationID), nil)
}

// testReportSettings: the caller's organisation's zone and report policy
// content, for every role (a lead reads no policies otherwise).
func testReportSettings(t *testing.T, f *fnDB) {
	a := f.a
	const call = `SELECT time_zone || ' ' || coalesce(policy::text, 'none') FROM app.report_settings()`
	lead := postgres.Tenant{OrganizationID: a.OrganizationID, Role: postgres.AppDepartmentLead, Scope: fmt.Sprintf("department:%d", a.DepartmentID)}
	equal(t, "defaults", f.rows(f.dashboard, lead, call), []string{"UTC none"})
	f.exec(`UPDATE organizations SET time_zone = 'Europe/Berlin', report_policy_id = $2 WHERE id = $1`, a.OrganizationID, a.PolicyID)
	equal(t, "lead", f.rows(f.dashboard, lead, call), []string{`Europe/Berlin {"screenshots": true}`})
	equal(t, "B", f.rows(f.dashboard, org(f.b.OrganizationID), call), []string{"UTC none"})
	equal(t, "no context", f.rows(f.dashboard, none, call), nil)
	f.refused(f.ingest, org(a.OrganizationID), noPrivilege, "permission denied", call)
	// Another organisation's policy cannot be the report policy.
	if _, err := f.admin.Exec(f.ctx, `UPDATE organizations SET report_policy_id = $2 WHERE id = $1`, f.b.OrganizationID, a.PolicyID); err == nil {
		t.Error("B took A's policy as its report policy")
	}
	// Deleting the policy puts the defaults back.
	f.exec(`DELETE FROM policy_changes WHERE policy_id = $1`, a.PolicyID)
	f.exec(`DELETE FROM policy_distribution_targets WHERE distribution_id IN (SELECT id FROM policy_distributions WHERE policy_id = $1)`, a.PolicyID)
	f.exec(`DELETE FROM policy_distributions WHERE policy_id = $1`, a.PolicyID)
	f.exec(`DELETE FROM policy_versions WHERE policy_id = $1`, a.PolicyID)
	f.exec(`DELETE FROM policies WHERE id = $1`, a.PolicyID)
	equal(t, "policy deleted", f.rows(f.dashboard, lead, call), []string{"Europe/Berlin none"})
}
