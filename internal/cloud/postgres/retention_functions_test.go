package postgres_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Retention (00027; the package's own tests, internal/cloud/retention, run
// whole runs): the contract of each definer function.

const lockNotAvailable = "55P03"

// lockConn is a session of the ingest role of its own (the retention lock
// is session-level), closed when the test ends.
func (f *fnDB) lockConn() *pgx.Conn {
	f.t.Helper()
	c, err := pgx.Connect(f.ctx, f.db.IngestURL)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close(f.ctx) })
	return c
}

// connRows runs sql on c and returns its one column as text.
func (f *fnDB) connRows(c *pgx.Conn, sql string, args ...any) []string {
	f.t.Helper()
	rows, err := c.Query(f.ctx, sql, args...)
	if err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var s string
		err := r.Scan(&s)
		return s, err
	})
	if err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// connRefused checks that sql on c fails with SQLSTATE code and a message
// containing msg.
func (f *fnDB) connRefused(c *pgx.Conn, code, msg, sql string, args ...any) {
	f.t.Helper()
	_, err := c.Exec(f.ctx, sql, args...)
	if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), code) {
		f.t.Errorf("%s: %v, want SQLSTATE %s containing %q", sql, err, code, msg)
	}
}

// begin starts a run on c (which then holds the lock) and returns its id.
func (f *fnDB) begin(c *pgx.Conn) int64 {
	f.t.Helper()
	var id int64
	var acquired bool
	if err := c.QueryRow(f.ctx, `SELECT run_id, acquired FROM monitoring.retention_run_begin(false)`).Scan(&id, &acquired); err != nil || !acquired {
		f.t.Fatalf("retention_run_begin: %v, acquired %v", err, acquired)
	}
	return id
}

// testRetentionHorizons: the (organisation, series) pairs deleted row by
// row — shorter than the global days (own policy, else the platform
// default; the shortest active one) or archived (at most the global
// days) — with the horizon at the server's clock; nothing else.
func testRetentionHorizons(t *testing.T, f *fnDB) {
	a, b := f.a.OrganizationID, f.b.OrganizationID
	f.exec(`INSERT INTO retention_policies (organization_id, resource_type, retention_days, action) VALUES
		($1, 'screenshots', 5, 'delete'), ($1, 'screenshots', 3, 'archive'), ($1, 'active_windows', 500, 'delete'),
		($1, 'device_events', 1, 'delete'), (NULL, 'visited_sites', 7, 'delete'), ($2, 'user_sessions', 400, 'archive')`, a, b)
	f.exec(`UPDATE retention_policies SET is_active = false WHERE resource_type = 'device_events'`)
	got := f.rows(f.ingest, none, `SELECT format('%s|%s|%s|%s|%s', organization_id, table_name, days, action,
		horizon = now() - make_interval(days => days)) FROM monitoring.retention_horizons()`)
	equal(t, "horizons", got, []string{
		fmt.Sprintf("%d|screenshots|3|archive|t", a), fmt.Sprintf("%d|visited_sites|7|delete|t", a),
		fmt.Sprintf("%d|user_sessions|365|archive|t", b), fmt.Sprintf("%d|visited_sites|7|delete|t", b)})
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT * FROM monitoring.retention_horizons()`)
}

// testRetentionRunBegin: the first session takes the lock and a running
// record; another is skipped (recorded); once the first session is gone,
// the next run marks its record failed.
func testRetentionRunBegin(t *testing.T, f *fnDB) {
	first := f.lockConn()
	id := f.begin(first)
	second := f.lockConn()
	got := f.connRows(second, `SELECT format('%s|%s', acquired, interrupted) FROM monitoring.retention_run_begin(true)`)
	equal(t, "second session", got, []string{"f|0"})
	equal(t, "records", f.rows(f.ingest, none, `SELECT format('%s|%s|%s', dry_run, status, finished_at IS NOT NULL) FROM monitoring.retention_runs ORDER BY id`),
		[]string{"f|running|f", "t|skipped|t"})
	first.Close(f.ctx)
	var acquired bool
	var interrupted int
	for try := 0; ; try++ {
		if err := second.QueryRow(f.ctx, `SELECT acquired, interrupted FROM monitoring.retention_run_begin(false)`).Scan(&acquired, &interrupted); err != nil {
			t.Fatal(err)
		}
		if acquired || try == 50 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !acquired || interrupted != 1 {
		t.Fatalf("after the first session closed: acquired %v, interrupted %d", acquired, interrupted)
	}
	if got := f.one(`SELECT format('%s|%s', status, error) FROM monitoring.retention_runs WHERE id = $1`, id); !strings.HasPrefix(got, "failed|interrupted") {
		t.Errorf("the closed session's run: %s", got)
	}
	f.connRefused(second, invalidParameter, "dry_run is required", `SELECT * FROM monitoring.retention_run_begin(NULL)`)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT * FROM monitoring.retention_run_begin(true)`)
}

// testRetentionRunProgress: adds to the running run of the session that
// holds the lock; refuses without the lock, for another table, negative
// counts, and a run not running.
func testRetentionRunProgress(t *testing.T, f *fnDB) {
	call := `SELECT monitoring.retention_run_progress($1, $2, $3, $4, $5, $6)`
	other := f.lockConn()
	c := f.lockConn()
	id := f.begin(c)
	f.connRefused(other, lockNotAvailable, "does not hold the retention lock", call, id, "screenshots", 1, 0, 0, 0)
	for i := 0; i < 2; i++ {
		if _, err := c.Exec(f.ctx, call, id, "screenshots", 5, 2, 100, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(f.ctx, call, id, "", 0, 1, 7, 0); err != nil {
		t.Fatal(err)
	}
	if got := f.one(`SELECT format('%s|%s|%s|%s', rows, files, bytes, archived) FROM monitoring.retention_runs WHERE id = $1`, id); got != `{"screenshots": 10}|5|207|2` {
		t.Errorf("progress recorded %s", got)
	}
	f.connRefused(c, invalidParameter, "not a time-series table", call, id, "users", 1, 0, 0, 0)
	f.connRefused(c, invalidParameter, "negative", call, id, "screenshots", -1, 0, 0, 0)
	f.connRefused(c, invalidParameter, "is not running", call, id+100, "screenshots", 1, 0, 0, 0)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", call, id, "screenshots", 1, 0, 0, 0)
}

// testRetentionRunFinish: ends the session's running run (failed with an
// error, else succeeded) and releases the lock; refuses without the lock.
func testRetentionRunFinish(t *testing.T, f *fnDB) {
	call := `SELECT monitoring.retention_run_finish($1, $2)`
	c := f.lockConn()
	id := f.begin(c)
	f.connRefused(f.lockConn(), lockNotAvailable, "does not hold the retention lock", call, id, "")
	equal(t, "finish", f.connRows(c, call, id, "disk full"), []string{"failed"})
	f.connRefused(c, lockNotAvailable, "does not hold the retention lock", call, id, "")
	id2 := f.begin(c)
	f.connRefused(c, invalidParameter, "is not running", call, id, "")
	equal(t, "finish", f.connRows(c, call, id2, ""), []string{"succeeded"})
	equal(t, "records", f.rows(f.ingest, none, `SELECT format('%s|%s', status, coalesce(error, '-')) FROM monitoring.retention_runs ORDER BY id`),
		[]string{"failed|disk full", "succeeded|-"})
	if got := f.one(`SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND classid = 1380270926 AND objid = 27
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); got != "0" {
		t.Errorf("%s advisory locks held after finish", got)
	}
	f.refused(f.dashboard, none, noPrivilege, "permission denied", call, id, "")
}

// oldScreenshots inserts screenshot rows 10 days old: for A two in
// monitoring (files under A's prefix) and one in the fallback (a copy of
// the first, and one outside the prefix), for B one; A keeps screenshots
// 3 days.
func (f *fnDB) oldScreenshots() (at time.Time) {
	f.t.Helper()
	d := time.Now().UTC().AddDate(0, 0, -10)
	if _, err := f.owner().Exec(f.ctx, `SELECT monitoring.ensure_partitions($1::date, $1::date)`, d.Format(time.DateOnly)); err != nil {
		f.t.Fatal(err)
	}
	a, b := f.a.OrganizationID, f.b.OrganizationID
	ins := func(schema string, org int64, gw uuid.UUID, id uuid.UUID, path string, size int, at time.Time) {
		f.exec(`INSERT INTO `+schema+`.screenshots (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, datetime)
			VALUES ($1, $2, $3, 9, 'agent-1', 'PC-1', 'S-1', $4, $5, $6)`, id, org, gw, path, size, at)
	}
	first := uuid.Must(uuid.NewV7())
	ins("monitoring", a, f.a.GatewayID, first, fmt.Sprintf("screenshots/%d/x/1.png", a), 10, d)
	ins("monitoring", a, f.a.GatewayID, uuid.Must(uuid.NewV7()), fmt.Sprintf("screenshots/%d/x/2.png", a), 20, d.Add(time.Minute))
	ins("monitoring_fallback", a, f.a.GatewayID, first, fmt.Sprintf("screenshots/%d/x/1.png", a), 10, d)
	ins("monitoring_fallback", a, f.a.GatewayID, uuid.Must(uuid.NewV7()), "elsewhere/3.png", 5, d.Add(2*time.Minute))
	ins("monitoring", b, f.b.GatewayID, uuid.Must(uuid.NewV7()), fmt.Sprintf("screenshots/%d/x/1.png", b), 40, d)
	f.exec(`INSERT INTO retention_policies (organization_id, resource_type, retention_days, action) VALUES ($1, 'screenshots', 3, 'delete')`, a)
	return d
}

// testRetentionDelete: with the lock, deletes at most the limit of the
// organisation's rows past its horizon, oldest first, monitoring then the
// fallback, returning them; nothing for an organisation without a
// row-by-row horizon; refuses without the lock and for another table.
func testRetentionDelete(t *testing.T, f *fnDB) {
	f.oldScreenshots()
	a, b := f.a.OrganizationID, f.b.OrganizationID
	call := `SELECT format('%s|%s|%s|%s', schema_name, file_path, file_size, row_json::jsonb ->> 'organization_id') FROM monitoring.retention_delete($1, $2, $3)`
	f.connRefused(f.lockConn(), lockNotAvailable, "does not hold the retention lock", call, "screenshots", a, 10)
	c := f.lockConn()
	f.begin(c)
	equal(t, "first batch", f.connRows(c, call, "screenshots", a, 2), []string{
		fmt.Sprintf("monitoring|screenshots/%d/x/1.png|10|%d", a, a), fmt.Sprintf("monitoring|screenshots/%d/x/2.png|20|%d", a, a)})
	equal(t, "second batch (limit clamped to 1)", f.connRows(c, call, "screenshots", a, 0), []string{
		fmt.Sprintf("monitoring_fallback|screenshots/%d/x/1.png|10|%d", a, a)})
	equal(t, "third batch", f.connRows(c, call, "screenshots", a, 10), []string{fmt.Sprintf("monitoring_fallback|elsewhere/3.png|5|%d", a)})
	equal(t, "done", f.connRows(c, call, "screenshots", a, 10), nil)
	equal(t, "B (global horizon)", f.connRows(c, call, "screenshots", b, 10), nil)
	equal(t, "A's other series", f.connRows(c, call, "active_windows", a, 10), nil)
	if got := f.one(`SELECT count(*)::text FROM monitoring_read.screenshots WHERE datetime < now() - interval '5 days'`); got != "0" {
		// monitoring_read filters by context: the administrator sees none;
		// count the tables themselves.
		t.Logf("read view: %s", got)
	}
	if got := f.one(`SELECT format('%s|%s', (SELECT count(*) FROM monitoring.screenshots WHERE datetime < now() - interval '5 days'),
		(SELECT count(*) FROM monitoring_fallback.screenshots WHERE datetime < now() - interval '5 days'))`); got != "1|0" {
		t.Errorf("old screenshot rows left (monitoring|fallback): %s, want B's only", got)
	}
	f.connRefused(c, invalidParameter, "not a time-series table", call, "users", a, 10)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", call, "screenshots", a, 10)
}

// testRetentionPreview: per listed pair, the rows past the horizon (both
// schemas) and, for screenshots, the distinct files under the
// organisation's prefix and their bytes; changes nothing.
func testRetentionPreview(t *testing.T, f *fnDB) {
	f.oldScreenshots()
	a := f.a.OrganizationID
	got := f.rows(f.ingest, none, `SELECT format('%s|%s|%s|%s|%s', organization_id, table_name, rows, files, bytes) FROM monitoring.retention_preview()`)
	equal(t, "preview", got, []string{fmt.Sprintf("%d|screenshots|4|2|30", a)})
	if n := f.one(`SELECT (SELECT count(*) FROM monitoring.screenshots) + (SELECT count(*) FROM monitoring_fallback.screenshots)`); n != "7" {
		t.Errorf("%s screenshot rows after the preview, want the 2 seeded and 5 old", n)
	}
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT * FROM monitoring.retention_preview()`)
}

// testRetentionExpiredPartitions: the partitions wholly past the global
// days, as drop_expired_partitions names them, with all their rows and
// those of organisations without a row-by-row horizon.
func testRetentionExpiredPartitions(t *testing.T, f *fnDB) {
	f.expiredPartitions(40) // past screenshots' 30 days only
	at := time.Now().UTC().AddDate(0, 0, -40)
	at = time.Date(at.Year(), at.Month(), at.Day(), 12, 0, 0, 0, time.UTC)
	a, b := f.a.OrganizationID, f.b.OrganizationID
	for _, r := range []struct {
		schema string
		org    int64
		gw     uuid.UUID
	}{{"monitoring", a, f.a.GatewayID}, {"monitoring", b, f.b.GatewayID}, {"monitoring_fallback", b, f.b.GatewayID}} {
		if r.schema == "monitoring" && f.timescale() {
			continue
		}
		f.exec(`INSERT INTO `+r.schema+`.screenshots (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, datetime)
			VALUES ($1, $2, $3, 9, 'agent-1', 'PC-1', 'S-1', 'x', $4)`, uuid.Must(uuid.NewV7()), r.org, r.gw, at)
	}
	f.exec(`INSERT INTO retention_policies (organization_id, resource_type, retention_days) VALUES ($1, 'screenshots', 3)`, a)
	got := f.rows(f.ingest, none, `SELECT format('%s|%s|%s|%s', partition_name, table_name, rows, rows_unlisted) FROM monitoring.retention_expired_partitions()`)
	want := []string{"monitoring_fallback.screenshots_p" + utcDay(-40) + "|screenshots|1|1"}
	if !f.timescale() {
		want = []string{"monitoring.screenshots_p" + utcDay(-40) + "|screenshots|2|1", want[0]}
	}
	equal(t, "expired", got, want)
	dropped := f.rows(f.ingest, none, `SELECT monitoring.drop_expired_partitions() ORDER BY 1`)
	for _, w := range want {
		if name := strings.Split(w, "|")[0]; !strings.Contains(strings.Join(dropped, " "), name) {
			t.Errorf("drop_expired_partitions dropped %v, not %s", dropped, name)
		}
	}
	equal(t, "after the drop", f.rows(f.ingest, none, `SELECT partition_name FROM monitoring.retention_expired_partitions()`), nil)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT * FROM monitoring.retention_expired_partitions()`)
}
