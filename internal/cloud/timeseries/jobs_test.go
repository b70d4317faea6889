package timeseries_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// seriesTables are the five time-series tables and their retention (days).
var seriesTables = map[string]int{"active_windows": 90, "visited_sites": 90, "screenshots": 30, "user_sessions": 365, "device_events": 365}

// storageKind is monitoring.storage_kind() of the database conn is on.
func storageKind(ctx context.Context, t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var kind string
	if err := conn.QueryRow(ctx, `SELECT monitoring.storage_kind()`).Scan(&kind); err != nil {
		t.Fatal(err)
	}
	return kind
}

// insertDay inserts n rows of org into table, on the UTC day `ago` days
// before today, as the administrator (who may write any organisation and
// any day).
func insertDay(ctx context.Context, t *testing.T, conn *pgx.Conn, table string, org, ago, n int) {
	t.Helper()
	cols, vals := "agent_uid, computer_uid, user_sid, ", "'a', 'c', 's', "
	switch table {
	case "active_windows":
		cols, vals = cols+"window_title, process_name", vals+"'t', 'p'"
	case "visited_sites":
		cols, vals = cols+"url", vals+"'https://example.org/'"
	case "screenshots":
		cols, vals = cols+"file_path", vals+"'f.png'"
	case "user_sessions":
		cols, vals = cols+"session_type", vals+"'login'"
	case "device_events":
		cols, vals = "device_serial, major_code, minor_code", "'SN1', 5, 75"
	}
	q := fmt.Sprintf(`INSERT INTO monitoring.%s (id, organization_id, gateway_id, seq, %s, datetime)
		SELECT gen_random_uuid(), $1, gen_random_uuid(), g, %s,
		       (date_trunc('day', now() AT TIME ZONE 'UTC') - make_interval(days => $2) + make_interval(mins => 7 * g)) AT TIME ZONE 'UTC'
		FROM generate_series(1, $3) g`, table, cols, vals)
	if _, err := conn.Exec(ctx, q, org, ago, n); err != nil {
		t.Fatalf("insert %d rows of organisation %d into %s %d days ago: %v", n, org, table, ago, err)
	}
}

// dayState is one UTC day of a hypertable: whether its chunk exists and is
// compressed, and the rows each organisation has in it.
type dayState struct {
	chunk, compressed bool
	rows              map[int]int
}

func (s dayState) String() string {
	return fmt.Sprintf("chunk=%v compressed=%v rows=%v", s.chunk, s.compressed, s.rows)
}

func dayOf(ctx context.Context, t *testing.T, conn *pgx.Conn, table string, ago int) dayState {
	t.Helper()
	const day = `(date_trunc('day', now() AT TIME ZONE 'UTC') - make_interval(days => $2)) AT TIME ZONE 'UTC'`
	dayArg1 := strings.ReplaceAll(day, "$2", "$1")
	s := dayState{rows: map[int]int{}}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*), coalesce(bool_or(is_compressed), false) FROM timescaledb_information.chunks
		WHERE hypertable_schema = 'monitoring' AND hypertable_name = $1 AND range_start = `+day, table, ago).Scan(&n, &s.compressed); err != nil {
		t.Fatal(err)
	}
	s.chunk = n > 0
	rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT organization_id::int, count(*)::int FROM monitoring.%s
		WHERE datetime >= %s AND datetime < %s + interval '1 day' GROUP BY 1`, table, dayArg1, dayArg1), ago)
	if err != nil {
		t.Fatal(err)
	}
	var org, c int
	if _, err := pgx.ForEachRow(rows, []any{&org, &c}, func() error { s.rows[org] = c; return nil }); err != nil {
		t.Fatal(err)
	}
	return s
}

// metric returns the value of the series of name with exactly labels.
func metric(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !sameLabels(m.GetLabel(), labels) {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			}
		}
	}
	return 0, false
}

func sameLabels(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if want[l.GetName()] != l.GetValue() {
			return false
		}
	}
	return true
}

// familiesWithPrefix lists the gathered metric families named prefix….
func familiesWithPrefix(t *testing.T, reg prometheus.Gatherer, prefix string) []string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), prefix) && len(f.GetMetric()) > 0 {
			out = append(out, f.GetName())
		}
	}
	return out
}

// syncBuffer is a log sink tests read while the logger writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the logged records at level whose message starts with msg.
func (s *syncBuffer) lines(t *testing.T, level, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(s.b.Bytes(), []byte("\n")) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(l, &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if rec["level"] == level && strings.HasPrefix(fmt.Sprint(rec["msg"]), msg) {
			out = append(out, rec)
		}
	}
	return out
}

func capturingLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewJSONHandler(io.MultiWriter(buf, logtest.Writer(t, "log")), &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// monitoringJobs maps "kind table" to the job id of every TimescaleDB job
// of schema monitoring.
func monitoringJobs(ctx context.Context, t *testing.T, conn *pgx.Conn) map[string]int {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT CASE proc_name WHEN 'policy_retention' THEN 'retention' WHEN 'policy_compression' THEN 'compression'
			ELSE 'refresh' END || ' ' || hypertable_name, job_id
		FROM timescaledb_information.jobs WHERE hypertable_schema = 'monitoring'`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	var key string
	var id int
	if _, err := pgx.ForEachRow(rows, []any{&key, &id}, func() error { out[key] = id; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// provokeRun asks the scheduler to start job now and waits up to a minute
// for the run to end. It returns the run's status ("Failed" on Debian's
// PostgreSQL 15.19/15.20, where every TimescaleDB 2.28 background job fails
// with `cannot drop portal "" while it is being set up`), or "" when the
// scheduler did not run it (no background worker free for this database).
func provokeRun(ctx context.Context, t *testing.T, conn *pgx.Conn, job int) string {
	t.Helper()
	var t0 time.Time
	if err := conn.QueryRow(ctx, `SELECT now() FROM alter_job($1, next_start => now())`, job).Scan(&t0); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		var status string
		if err := conn.QueryRow(ctx, `SELECT coalesce(last_run_status, '') FROM timescaledb_information.job_stats
			WHERE job_id = $1 AND last_run_started_at >= $2 AND job_status <> 'Running'`, job, t0).Scan(&status); err == nil {
			return status
		} else if err != pgx.ErrNoRows {
			t.Fatal(err)
		}
	}
	return ""
}

// TestMaintainerRunsThePoliciesTheSchedulerDoesNot (TimescaleDB only): the
// retention job of active_windows is really run by the scheduler (on this
// project's PostgreSQL 15.20 it fails), the others are paused (overdue), and
// device_events has no retention policy at all. One maintenance run drops
// every chunk past retention, compresses every chunk older than 7 days
// that retention keeps, touches nothing newer, keeps both organisations'
// rows of the kept days, and the metrics and the log say what happened.
func TestMaintainerRunsThePoliciesTheSchedulerDoesNot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if kind := storageKind(ctx, t, admin); kind != "timescaledb" {
		t.Skip("the time series are native partitions here (point TEST_DATABASE_URL at a TimescaleDB server): no TimescaleDB jobs to watch; " +
			"TestJobFunctionsAreNoOpsOnPartitions covers this engine")
	}
	jobs := monitoringJobs(ctx, t, admin)
	if len(jobs) != 11 {
		t.Fatalf("monitoring has jobs %v, want 5 retention, 5 compression and 1 refresh", jobs)
	}
	// A real scheduler run of one job; then nothing of the scheduler's may
	// race the test: that job waits a day, the others are paused.
	awRetention := jobs["retention active_windows"]
	status := provokeRun(ctx, t, admin, awRetention)
	t.Logf("the scheduler's run of job %d (retention active_windows): %q", awRetention, status)
	for key, id := range jobs {
		q := `SELECT alter_job($1, scheduled => false)`
		if id == awRetention && status == "Failed" {
			q = `SELECT alter_job($1, next_start => now() + interval '1 day')`
		}
		if _, err := admin.Exec(ctx, q, id); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	if _, err := admin.Exec(ctx, `SELECT remove_retention_policy('monitoring.device_events')`); err != nil {
		t.Fatal(err)
	}

	// Days ago of the rows, 3 per organisation per day: today, 2 (kept as
	// is), 10 (compressed), 30, 40, 90, 100, 364 and 400 (compressed, or
	// past retention, by table; the last day of each retention is kept).
	agos := []int{0, 2, 10, 30, 40, 90, 100, 364, 400}
	for table := range seriesTables {
		for _, ago := range agos {
			for _, org := range []int{1, 2} {
				insertDay(ctx, t, admin, table, org, ago, 3)
			}
		}
	}

	reg := prometheus.NewRegistry()
	logger, logs := capturingLogger(t)
	pool, err := postgres.Connect(ctx, db.IngestURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m := timeseries.NewMaintainer(pool, logger, reg, 8, 3)
	res, err := m.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}

	wantDropped, wantCompressed := map[string]int{}, map[string]int{}
	for table, keep := range seriesTables {
		for _, ago := range agos {
			got := dayOf(ctx, t, admin, table, ago)
			switch {
			case ago > keep: // [day, day+1) wholly older than now − retention
				wantDropped[table]++
				if got.chunk || len(got.rows) > 0 {
					t.Errorf("%s, %d days ago (retention %d): %v, want the chunk dropped", table, ago, keep, got)
				}
			case ago >= 8: // wholly older than now − 7 days
				wantCompressed[table]++
				if !got.chunk || !got.compressed || got.rows[1] != 3 || got.rows[2] != 3 {
					t.Errorf("%s, %d days ago: %v, want compressed with both organisations' 3 rows", table, ago, got)
				}
			default:
				if !got.chunk || got.compressed || got.rows[1] != 3 || got.rows[2] != 3 {
					t.Errorf("%s, %d days ago: %v, want untouched (uncompressed, both organisations' 3 rows)", table, ago, got)
				}
			}
		}
	}

	ran := map[string]int{}
	for _, p := range res.Policies {
		ran[p.Kind+" "+p.Table] = len(p.Chunks)
	}
	for table := range seriesTables {
		if n, ok := ran["retention "+table]; !ok || n != wantDropped[table] {
			t.Errorf("retention of %s: ran %v with %d chunks, want %d dropped", table, ok, n, wantDropped[table])
		}
		if n, ok := ran["compression "+table]; !ok || n != wantCompressed[table] {
			t.Errorf("compression of %s: ran %v with %d chunks, want %d compressed", table, ok, n, wantCompressed[table])
		}
		if v, _ := metric(t, reg, "timeseries_chunks_dropped_by_maintainer_total", map[string]string{"table": table}); int(v) != wantDropped[table] {
			t.Errorf("timeseries_chunks_dropped_by_maintainer_total{table=%s} = %v, want %d", table, v, wantDropped[table])
		}
		if v, _ := metric(t, reg, "timeseries_chunks_compressed_by_maintainer_total", map[string]string{"table": table}); int(v) != wantCompressed[table] {
			t.Errorf("timeseries_chunks_compressed_by_maintainer_total{table=%s} = %v, want %d", table, v, wantCompressed[table])
		}
		last, ok := metric(t, reg, "timeseries_policy_last_run_timestamp_seconds", map[string]string{"kind": "retention", "table": table})
		if !ok || time.Since(time.Unix(int64(last), 0)) > time.Minute {
			t.Errorf("timeseries_policy_last_run_timestamp_seconds{retention,%s} = %v (%v), want the maintainer's run just now", table, last, ok)
		}
	}
	if len(res.Policies) != 10 {
		t.Errorf("policies run: %v, want 10 (retention and compression of the 5 tables; never the refresh)", ran)
	}
	for kind, want := range map[string]float64{"retention": 5, "compression": 5} {
		if v, _ := metric(t, reg, "timeseries_jobs_run_by_maintainer_total", map[string]string{"kind": kind}); v != want {
			t.Errorf("timeseries_jobs_run_by_maintainer_total{kind=%s} = %v, want %v", kind, v, want)
		}
	}
	if v, ok := metric(t, reg, "timeseries_jobs_run_by_maintainer_total", map[string]string{"kind": "refresh"}); ok {
		t.Errorf("the maintainer ran the refresh (%v): it has nothing to run it with, and the aggregate reads in real time", v)
	}

	// The job metrics show what the scheduler did and did not do.
	lbl := func(key string) map[string]string {
		kind, table, _ := strings.Cut(key, " ")
		return map[string]string{"job": strconv.Itoa(jobs[key]), "kind": kind, "table": table}
	}
	for key := range jobs {
		if key == "retention device_events" {
			continue // removed above
		}
		overdue, _ := metric(t, reg, "timeseries_job_overdue", lbl(key))
		scheduled, _ := metric(t, reg, "timeseries_job_scheduled", lbl(key))
		if key == "retention active_windows" && status == "Failed" {
			failed, _ := metric(t, reg, "timeseries_job_last_run_failed", lbl(key))
			consecutive, _ := metric(t, reg, "timeseries_job_consecutive_failures", lbl(key))
			failures, _ := metric(t, reg, "timeseries_job_failures_total", lbl(key))
			next, _ := metric(t, reg, "timeseries_job_next_start_timestamp_seconds", lbl(key))
			lastRun, _ := metric(t, reg, "timeseries_job_last_run_timestamp_seconds", lbl(key))
			if failed != 1 || consecutive < 1 || failures < 1 || scheduled != 1 || overdue != 0 ||
				next < float64(time.Now().Add(23*time.Hour).Unix()) || time.Since(time.Unix(int64(lastRun), 0)) > 2*time.Minute {
				t.Errorf("%s after a failed run: failed=%v consecutive=%v failures_total=%v scheduled=%v overdue=%v next_start=%v last_run=%v",
					key, failed, consecutive, failures, scheduled, overdue, next, lastRun)
			}
			continue
		}
		if overdue != 1 || scheduled != 0 {
			t.Errorf("%s paused: overdue=%v scheduled=%v, want 1 and 0", key, overdue, scheduled)
		}
	}
	if v, ok := metric(t, reg, "timeseries_job_overdue", map[string]string{"job": "none", "kind": "retention", "table": "device_events"}); v != 1 {
		t.Errorf("device_events without a retention policy: timeseries_job_overdue{job=none} = %v (%v), want 1", v, ok)
	}

	warn := logs.lines(t, "WARN", "TimescaleDB scheduler is not running policy retention, compression; the maintainer ran it")
	if len(warn) != 1 {
		t.Fatalf("%d warnings that the scheduler is not running the policies, want exactly 1", len(warn))
	}
	if pol := fmt.Sprint(warn[0]["policies"]); !strings.Contains(pol, "retention device_events (no job: no policy)") ||
		(status == "Failed" && !strings.Contains(pol, fmt.Sprintf("retention active_windows (job %d: last run failed", awRetention))) {
		t.Errorf("warning's policies: %s", pol)
	}
	if !strings.Contains(fmt.Sprint(warn[0]["refresh_not_running"]), "activity_hourly") {
		t.Errorf("warning does not report the stale refresh: %v", warn[0])
	}

	// The scheduler is still not running them: the next run does the
	// policies' work again, and there is none left.
	res, err = m.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Policies {
		if len(p.Chunks) != 0 {
			t.Errorf("second run: %s of %s touched %v, want nothing left to do", p.Kind, p.Table, p.Chunks)
		}
	}
	if v, _ := metric(t, reg, "timeseries_jobs_run_by_maintainer_total", map[string]string{"kind": "retention"}); v != 10 || len(res.Policies) != 10 {
		t.Errorf("second run: %d policies, timeseries_jobs_run_by_maintainer_total{retention} = %v; want 10 and 10", len(res.Policies), v)
	}
}

// TestIngestRoleCannotAbuseJobFunctions (TimescaleDB only) calls the new
// functions as the ingest role the way an attacker with its URL would:
// retention drops nothing within retention and at most 100 chunks per
// call, compression compresses nothing newer than 7 days and at most 10
// per call, names that are not one of the five tables are refused, and
// the role can neither record a maintainer run nor drop chunks itself.
func TestIngestRoleCannotAbuseJobFunctions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if kind := storageKind(ctx, t, admin); kind != "timescaledb" {
		t.Skip("the time series are native partitions here (point TEST_DATABASE_URL at a TimescaleDB server): the functions answer nothing; " +
			"TestJobFunctionsAreNoOpsOnPartitions covers this engine")
	}
	if _, err := admin.Exec(ctx, `SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs WHERE hypertable_schema = 'monitoring'`); err != nil {
		t.Fatal(err)
	}
	ingest, err := pgx.Connect(ctx, db.IngestURL)
	if err != nil {
		t.Fatal(err)
	}
	defer ingest.Close(ctx)

	// active_windows (90 days): 110 expired days (91 … 200 days ago), 20
	// compressible ones (8 … 20 and the last days of retention, 84 … 90),
	// and today and 5 days ago; one row per organisation per day.
	var expired, compressible, recent []int
	for ago := 91; ago <= 200; ago++ {
		expired = append(expired, ago)
	}
	for ago := 8; ago <= 90; ago++ {
		if ago <= 20 || ago >= 84 {
			compressible = append(compressible, ago)
		}
	}
	recent = []int{0, 5}
	for _, ago := range slices.Concat(expired, compressible, recent) {
		for _, org := range []int{1, 2} {
			insertDay(ctx, t, admin, "active_windows", org, ago, 1)
		}
	}
	call := func(fn, table string) []string {
		t.Helper()
		rows, err := ingest.Query(ctx, `SELECT `+fn+`($1)`, table)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s(%q) as the ingest role: %v", fn, table, err)
		}
		return out
	}
	kept := func(agos []int) {
		t.Helper()
		for _, ago := range agos {
			if s := dayOf(ctx, t, admin, "active_windows", ago); !s.chunk || s.rows[1] != 1 || s.rows[2] != 1 {
				t.Errorf("%d days ago: %v, want kept with both organisations' rows", ago, s)
			}
		}
	}

	// Retention: 100, then the 10 left, then nothing; the 100 are the
	// oldest.
	for i, want := range []int{100, 10, 0} {
		if got := call("monitoring.apply_retention", "active_windows"); len(got) != want {
			t.Errorf("apply_retention call %d dropped %d chunks, want %d", i+1, len(got), want)
		}
		if i == 0 {
			if s := dayOf(ctx, t, admin, "active_windows", 100); !s.chunk {
				t.Errorf("the first call dropped 100 days ago before older ones (the bound keeps the oldest first)")
			}
		}
	}
	for _, ago := range expired {
		if s := dayOf(ctx, t, admin, "active_windows", ago); s.chunk || len(s.rows) > 0 {
			t.Errorf("%d days ago (past the 90-day retention) not dropped: %v", ago, s)
		}
	}
	kept(slices.Concat(compressible, recent))

	// Compression: 10, then the 10 left, then nothing; never a recent day.
	for i, want := range []int{10, 10, 0} {
		if got := call("monitoring.apply_compression", "active_windows"); len(got) != want {
			t.Errorf("apply_compression call %d compressed %d chunks, want %d", i+1, len(got), want)
		}
	}
	for _, ago := range compressible {
		if s := dayOf(ctx, t, admin, "active_windows", ago); !s.compressed {
			t.Errorf("%d days ago not compressed: %v", ago, s)
		}
	}
	for _, ago := range recent {
		if s := dayOf(ctx, t, admin, "active_windows", ago); s.compressed {
			t.Errorf("%d days ago compressed: younger than 7 days", ago)
		}
	}
	kept(slices.Concat(compressible, recent))
	// The other tables have nothing to do.
	for table := range seriesTables {
		if table == "active_windows" {
			continue
		}
		if got := slices.Concat(call("monitoring.apply_retention", table), call("monitoring.apply_compression", table)); len(got) != 0 {
			t.Errorf("%s: the functions touched %v, want nothing (no rows)", table, got)
		}
	}

	for _, sql := range []string{
		`SELECT monitoring.apply_retention('active_windows; DROP TABLE monitoring.retention')`,
		`SELECT monitoring.apply_compression('activity_hourly')`,
		`SELECT monitoring.apply_retention('retention')`,
		`SELECT monitoring.apply_retention(NULL)`,
	} {
		var pgErr *pgconn.PgError
		if _, err := ingest.Exec(ctx, sql); !asPgError(err, &pgErr) || pgErr.Code != "22023" {
			t.Errorf("%s: %v, want invalid_parameter_value (22023)", sql, err)
		}
	}
	for _, sql := range []string{
		`INSERT INTO monitoring.maintainer_policy_runs VALUES ('retention', 'active_windows', now(), 1, 0)`,
		`SELECT drop_chunks('monitoring.active_windows', older_than => now())`,
		`SELECT * FROM monitoring.maintainer_policy_runs`,
	} {
		if _, err := ingest.Exec(ctx, sql); err == nil {
			t.Errorf("%s as the ingest role succeeded, want refused", sql)
		}
	}
	kept(slices.Concat(compressible, recent))
	var runs, chunks int
	if err := admin.QueryRow(ctx, `SELECT runs, chunks FROM monitoring.maintainer_policy_runs WHERE kind = 'retention' AND table_name = 'active_windows'`).Scan(&runs, &chunks); err != nil || runs != 3 || chunks != 110 {
		t.Errorf("recorded retention runs of active_windows: %d runs, %d chunks (%v); want 3 and 110", runs, chunks, err)
	}
}

func asPgError(err error, target **pgconn.PgError) bool {
	return err != nil && errors.As(err, target)
}

// TestJobFunctionsAreNoOpsOnPartitions (native partitions only): there are
// no TimescaleDB jobs, so job_health() answers nothing, the policy
// functions touch nothing (partition retention is drop_expired_partitions'
// work), and the maintainer runs no policy and exports no job metric.
func TestJobFunctionsAreNoOpsOnPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if kind := storageKind(ctx, t, admin); kind != "partitions" {
		t.Skip("the time series are TimescaleDB hypertables here: TestMaintainerRunsThePoliciesTheSchedulerDoesNot and " +
			"TestIngestRoleCannotAbuseJobFunctions cover this engine")
	}
	ingest, err := pgx.Connect(ctx, db.IngestURL)
	if err != nil {
		t.Fatal(err)
	}
	defer ingest.Close(ctx)
	// An expired partition with rows of both organisations, and today's.
	if _, err := admin.Exec(ctx, `SELECT monitoring.ensure_partitions(current_date - 100, current_date - 100)`); err != nil {
		t.Fatal(err)
	}
	for _, ago := range []int{0, 100} {
		for _, org := range []int{1, 2} {
			insertDay(ctx, t, admin, "active_windows", org, ago, 2)
		}
	}
	state := func() (parts, rows int) {
		t.Helper()
		if err := admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_class WHERE relispartition AND relkind = 'r'),
			(SELECT count(*) FROM monitoring.active_windows)`).Scan(&parts, &rows); err != nil {
			t.Fatal(err)
		}
		return parts, rows
	}
	parts0, rows0 := state()
	var n int
	if err := ingest.QueryRow(ctx, `SELECT count(*) FROM monitoring.job_health()`).Scan(&n); err != nil || n != 0 {
		t.Errorf("job_health() on partitions: %d rows (%v), want none", n, err)
	}
	for table := range seriesTables {
		for _, fn := range []string{"monitoring.apply_retention", "monitoring.apply_compression"} {
			if err := ingest.QueryRow(ctx, `SELECT count(*) FROM `+fn+`($1)`, table).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s(%s) on partitions: %d (%v), want nothing", fn, table, n, err)
			}
		}
	}
	if _, err := ingest.Exec(ctx, `SELECT monitoring.apply_retention('nope')`); err == nil {
		t.Errorf("apply_retention('nope') accepted on partitions")
	}
	if parts, rows := state(); parts != parts0 || rows != rows0 {
		t.Fatalf("the job functions changed partitions %d → %d, rows %d → %d", parts0, parts, rows0, rows)
	}

	reg := prometheus.NewRegistry()
	logger, logs := capturingLogger(t)
	pool, err := postgres.Connect(ctx, db.IngestURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m := timeseries.NewMaintainer(pool, logger, reg, 8, 3)
	res, err := m.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Policies) != 0 {
		t.Errorf("maintainer ran policies on partitions: %+v", res.Policies)
	}
	if h, err := m.JobHealth(ctx); err != nil || len(h) != 0 {
		t.Errorf("JobHealth on partitions: %v (%v), want none", h, err)
	}
	if fams := slices.Concat(familiesWithPrefix(t, reg, "timeseries_job"), familiesWithPrefix(t, reg, "timeseries_policy"),
		familiesWithPrefix(t, reg, "timeseries_chunks")); len(fams) != 0 {
		t.Errorf("job metrics exported on partitions: %v", fams)
	}
	if w := logs.lines(t, "WARN", "TimescaleDB"); len(w) != 0 {
		t.Errorf("TimescaleDB warnings on partitions: %v", w)
	}
	// The partition path ran as before: the expired partition is gone,
	// today's rows of both organisations stay.
	if s := strings.Join(res.Dropped, ","); !strings.Contains(s, "monitoring.active_windows_p") {
		t.Errorf("partition retention did not run: dropped %v", res.Dropped)
	}
	for _, org := range []int{1, 2} {
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM monitoring.active_windows WHERE organization_id = $1`, org).Scan(&n); err != nil || n != 2 {
			t.Errorf("organisation %d has %d rows left (%v), want today's 2", org, n, err)
		}
	}
}
