package postgres_test

import (
	"testing"
	"time"
)

// testRetentionRollups (00028): with the retention lock, deletes the
// report rollups of the local days wholly past each organisation's
// horizon (activity_days and window usage against active_windows, site
// usage against visited_sites), never another organisation's nor a kept
// day, marks the horizon's day dirty, and is bounded; without the lock or
// with a bad bound it refuses; the dashboard role cannot call it.
func testRetentionRollups(t *testing.T, f *fnDB) {
	call := `SELECT monitoring.retention_rollups($1)::text`
	a, b := f.a.OrganizationID, f.b.OrganizationID
	// A keeps windows 3 days and sites 90 (global); B everything 90 days.
	f.exec(`INSERT INTO retention_policies (organization_id, resource_type, retention_days) VALUES ($1, 'active_windows', 3)`, a)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for _, o := range []int64{a, b} {
		for _, ago := range []int{10, 5, 1} {
			day := today.AddDate(0, 0, -ago)
			f.exec(`INSERT INTO monitoring.activity_days (organization_id, user_sid, day, time_zone, active_minutes) VALUES ($1, 'S-R', $2::date, 'UTC', '\x00')`, o, day)
			f.exec(`INSERT INTO monitoring.activity_day_usage (organization_id, user_sid, day, kind, process_name, host, seconds, events)
				VALUES ($1, 'S-R', $2::date, 'window', 'a.exe', '', 60, 1), ($1, 'S-R', $2::date, 'site', '', 'x.com', 60, 1)`, o, day)
		}
	}
	count := func(o int64, table string) string {
		return f.one(`SELECT string_agg(to_char(day, 'MM-DD') || coalesce(':' || kind, ''), ',' ORDER BY day, kind) FROM (
			SELECT day, NULL AS kind, organization_id, user_sid FROM monitoring.activity_days WHERE $2 = 'days'
			UNION ALL SELECT day, kind, organization_id, user_sid FROM monitoring.activity_day_usage WHERE $2 = 'usage') s
			WHERE organization_id = $1 AND user_sid = 'S-R'`, o, table)
	}
	beforeB := count(b, "days") + "|" + count(b, "usage")
	f.connRefused(f.lockConn(), lockNotAvailable, "does not hold the retention lock", call, 10)
	c := f.lockConn()
	f.begin(c)
	f.connRefused(c, invalidParameter, "between 1 and 10000", call, 0)
	f.connRefused(c, invalidParameter, "between 1 and 10000", call, 10001)
	// Bounded: one row per table per call.
	equal(t, "first call", f.connRows(c, call, 1), []string{"2"})
	for i := 0; f.connRows(c, call, 1)[0] != "0"; i++ {
		if i > 20 {
			t.Fatal("retention_rollups never reaches 0")
		}
	}
	day := func(ago int) string { return today.AddDate(0, 0, -ago).Format("01-02") }
	equal(t, "A's days", []string{count(a, "days")}, []string{day(1)})
	equal(t, "A's usage", []string{count(a, "usage")}, []string{
		day(10) + ":site," + day(5) + ":site," + day(1) + ":site," + day(1) + ":window"})
	equal(t, "B untouched", []string{count(b, "days") + "|" + count(b, "usage")}, []string{beforeB})
	// The horizon's day (3 days ago: no rollup row there) is not marked; a
	// row on it is.
	f.exec(`INSERT INTO monitoring.activity_days (organization_id, user_sid, day, time_zone, active_minutes) VALUES ($1, 'S-H', $2::date, 'UTC', '\x00')`, a, today.AddDate(0, 0, -3))
	f.connRows(c, call, 10)
	equal(t, "dirty", []string{f.one(`SELECT string_agg(user_sid, ',') FROM monitoring.activity_dirty WHERE organization_id = $1 AND user_sid IN ('S-R', 'S-H')`, a)}, []string{"S-H"})
	f.refused(f.dashboard, none, noPrivilege, "permission denied", call, 10)
}
