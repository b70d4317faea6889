package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// skipUnlessTimescaleDB is why the TimescaleDB-only tests skip on a server
// without it.
const skipUnlessTimescaleDB = "TimescaleDB is not loaded on this server (needs the extension and shared_preload_libraries; " +
	"point TEST_DATABASE_URL at such a server): the time series use native daily partitions here, which every other test checks"

// storageKind is monitoring.storage_kind() of the database conn (an
// administrator's) is connected to.
func storageKind(ctx context.Context, t testing.TB, conn *pgx.Conn) string {
	t.Helper()
	var kind string
	if err := conn.QueryRow(ctx, `SELECT monitoring.storage_kind()`).Scan(&kind); err != nil {
		t.Fatal(err)
	}
	return kind
}

// timescaleDBStatistics are TimescaleDB's relations with statistics of the
// stored data that bootstrap.sql revokes from PUBLIC and grants to the
// owner (the catalog decision of issue 12).
var timescaleDBStatistics = []string{
	"_timescaledb_internal.bgw_job_stat",
	"_timescaledb_internal.bgw_policy_chunk_stats",
	"_timescaledb_internal.hypertable_chunk_local_size",
	"_timescaledb_internal.compressed_chunk_stats",
	"_timescaledb_catalog.compression_chunk_size",
	"timescaledb_information.stat_chunk_activity",
}

// timescaleDBChunkStatistics is the function behind stat_chunk_activity,
// revoked from PUBLIC likewise.
const timescaleDBChunkStatistics = "_timescaledb_functions.chunk_statistics(regclass,regclass,timestamp with time zone)"

// seriesRows inserts, as the administrator, one row per organisation and
// day over the last days days into each of the five series in schema
// (monitoring or monitoring_fallback).
func seriesRows(ctx context.Context, t testing.TB, conn *pgx.Conn, schema string, orgs []int64, days int) {
	t.Helper()
	extra := map[string]struct{ cols, vals string }{
		"active_windows": {"agent_uid, computer_uid, user_sid, process_name, duration_seconds", "'agent-1', 'PC-1', 'S-1', 'code.exe', 30"},
		"visited_sites":  {"agent_uid, computer_uid, user_sid, url", "'agent-1', 'PC-1', 'S-1', 'https://example.com'"},
		"screenshots":    {"agent_uid, computer_uid, user_sid, file_path", "'agent-1', 'PC-1', 'S-1', 'shots/x.png'"},
		"user_sessions":  {"agent_uid, computer_uid, user_sid, session_type", "'agent-1', 'PC-1', 'S-1', 'login'"},
		"device_events":  {"device_serial, major_code, minor_code", "'DS-1', 5, 75"},
	}
	for table, e := range extra {
		q := fmt.Sprintf(`INSERT INTO %s.%s (id, organization_id, gateway_id, seq, datetime, %s)
			SELECT gen_random_uuid(), o, gen_random_uuid(), d, now() - make_interval(days => d), %s
			FROM unnest($1::bigint[]) o, generate_series(0, $2 - 1) d`, schema, table, e.cols, e.vals)
		if _, err := conn.Exec(ctx, q, orgs, days); err != nil {
			t.Fatalf("%s.%s: %v", schema, table, err)
		}
	}
}

// compressOlderThan compresses, as the owner (whom TimescaleDB's
// compression jobs run as), the chunks of the five hypertables older than
// age, and returns how many chunks are compressed.
func compressOlderThan(ctx context.Context, t testing.TB, ownerURL string, age time.Duration) int {
	t.Helper()
	owner, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(ctx)
	var n int
	if err := owner.QueryRow(ctx, `SELECT count(compress_chunk(c, if_not_compressed => true))
		FROM monitoring.retention r, show_chunks(format('monitoring.%I', r.table_name)::regclass, older_than => $1::interval) c`,
		age).Scan(&n); err != nil {
		t.Fatalf("compress chunks: %v", err)
	}
	if err := owner.QueryRow(ctx, `SELECT count(*) FROM timescaledb_information.chunks
		WHERE hypertable_schema = 'monitoring' AND is_compressed`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// makeTimescaleDBChunks gives the five hypertables chunks of two
// organisations over the last 10 days, those older than 7 days compressed
// as the compression policy would, when the database stores the series in
// TimescaleDB; with native partitions it does nothing.
func makeTimescaleDBChunks(ctx context.Context, t testing.TB, db *pgtest.Database) {
	t.Helper()
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if storageKind(ctx, t, admin) != "timescaledb" {
		return
	}
	seriesRows(ctx, t, admin, "monitoring", []int64{1, 2}, 10)
	if n := compressOlderThan(ctx, t, db.OwnerURL, 7*24*time.Hour); n < 5 {
		t.Fatalf("%d compressed chunks, want at least one per hypertable", n)
	}
}

// TestTimescaleDBLayout checks the hypertable layout when the server has
// TimescaleDB loaded; on plain PostgreSQL it says so and skips. The
// native-partition layout is checked by every other test.
func TestTimescaleDBLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if storageKind(ctx, t, conn) != "timescaledb" {
		t.Skip(skipUnlessTimescaleDB)
	}
	tests := []struct {
		name string
		sql  string
		want int
	}{
		{"hypertables with 1-day chunks", `SELECT count(*) FROM timescaledb_information.dimensions
			WHERE hypertable_schema = 'monitoring' AND column_name = 'datetime' AND time_interval = interval '1 day'`, 5},
		{"retention policies", `SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' AND hypertable_schema = 'monitoring'`, 5},
		{"compression segmented by organisation", `SELECT count(*) FROM timescaledb_information.compression_settings
			WHERE hypertable_schema = 'monitoring' AND attname = 'organization_id' AND segmentby_column_index = 1`, 5},
		{"hourly continuous aggregate", `SELECT count(*) FROM timescaledb_information.continuous_aggregates WHERE view_name = 'activity_hourly'`, 1},
		{"the aggregate reads in real time", `SELECT count(*) FROM timescaledb_information.continuous_aggregates
			WHERE view_name = 'activity_hourly' AND NOT materialized_only`, 1},
		// Ingest's per-day ensure is a no-op for the hypertables (chunks are
		// TimescaleDB's work) and still creates the fallback's partitions.
		{"per-day ensure leaves the hypertables alone", `SELECT monitoring.ensure_day_partitions('monitoring', ARRAY['user_sessions'], ARRAY[current_date - 100])`, 0},
		{"per-day ensure creates the fallback's partition", `SELECT monitoring.ensure_day_partitions('monitoring_fallback', ARRAY['user_sessions'], ARRAY[current_date - 100])`, 1},
	}
	for _, tt := range tests {
		var n int
		if err := conn.QueryRow(ctx, tt.sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if n != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, n, tt.want)
		}
	}
}

// TestTimescaleDBStatisticsClosedToRuntimeRoles asserts the catalog
// decision of issue 12: TimescaleDB's statistics of the stored data
// (timescaleDBStatistics) are revoked from PUBLIC and readable by the owner
// only, and TimescaleDB keeps working without them: ingest through the
// hypertables (into compressed chunks too), reads through monitoring_read
// including the real-time aggregate, and the owner's compression,
// retention and aggregate-refresh jobs run by CALL run_job, and its size
// functions.
func TestTimescaleDBStatisticsClosedToRuntimeRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, admin, a, b := seedTwo(ctx, t)
	if storageKind(ctx, t, admin) != "timescaledb" {
		t.Skip(skipUnlessTimescaleDB)
	}
	// As `staffctl migrate up` runs it on this database (idempotent).
	if err := postgres.Bootstrap(ctx, db.AdminURL); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{postgres.RoleDashboard, postgres.RoleIngest, postgres.RoleAdmin, "public"} {
		for _, rel := range timescaleDBStatistics {
			var can bool
			if err := admin.QueryRow(ctx, `SELECT has_table_privilege($1, $2, 'SELECT')`, r, rel).Scan(&can); err != nil {
				t.Fatal(err)
			}
			if can {
				t.Errorf("%s may read %s", r, rel)
			}
		}
		var can bool
		if err := admin.QueryRow(ctx, `SELECT has_function_privilege($1, $2, 'EXECUTE')`, r, timescaleDBChunkStatistics).Scan(&can); err != nil {
			t.Fatal(err)
		}
		if can {
			t.Errorf("%s may execute %s", r, timescaleDBChunkStatistics)
		}
	}
	for _, rel := range timescaleDBStatistics {
		var can bool
		if err := admin.QueryRow(ctx, `SELECT has_table_privilege($1, $2, 'SELECT')`, postgres.RoleOwner, rel).Scan(&can); err != nil {
			t.Fatal(err)
		}
		if !can {
			t.Errorf("the owner may not read %s", rel)
		}
	}
	dash := pg.Pool(t, db.DashboardURL, 2)
	err := postgres.InTenant(ctx, dash, postgres.Tenant{OrganizationID: a.OrganizationID, Role: postgres.AppOrgAdmin}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT * FROM _timescaledb_internal.hypertable_chunk_local_size`)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("dashboard reads hypertable_chunk_local_size: %v, want permission denied", err)
	}

	// Old rows of both organisations, compressed as the policy would.
	seriesRows(ctx, t, admin, "monitoring", []int64{a.OrganizationID, b.OrganizationID}, 100)
	owner, err := pgx.Connect(ctx, db.OwnerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(ctx)
	job := func(proc, hypertable string) {
		t.Helper()
		var id int
		if err := owner.QueryRow(ctx, `SELECT job_id FROM timescaledb_information.jobs
			WHERE proc_name = $1 AND hypertable_schema = 'monitoring' AND hypertable_name = $2`, proc, hypertable).Scan(&id); err != nil {
			t.Fatalf("%s job of %s: %v", proc, hypertable, err)
		}
		if _, err := owner.Exec(ctx, fmt.Sprintf(`CALL run_job(%d)`, id)); err != nil {
			t.Fatalf("CALL run_job(%d) (%s of %s) as the owner: %v", id, proc, hypertable, err)
		}
	}
	chunks := func(where string) int {
		t.Helper()
		var n int
		if err := owner.QueryRow(ctx, `SELECT count(*) FROM timescaledb_information.chunks
			WHERE hypertable_schema = 'monitoring' AND hypertable_name = 'active_windows' AND `+where).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if all := chunks("true"); all < 100 {
		t.Fatalf("%d chunks of active_windows, want 100", all)
	}
	job("policy_retention", "active_windows")
	if all, old := chunks("true"), chunks("range_end < now() - interval '91 days'"); all > 92 || old != 0 {
		t.Errorf("after the retention job: %d chunks, %d older than 90 days; want ≤ 92 and 0", all, old)
	}
	job("policy_compression", "active_windows")
	if compressed, recent := chunks("is_compressed"), chunks("is_compressed AND range_start > now() - interval '6 days'"); compressed < 80 || recent != 0 {
		t.Errorf("after the compression job: %d compressed chunks, %d of the last 6 days; want ≥ 80 and 0", compressed, recent)
	}
	job("policy_refresh_continuous_aggregate", "activity_hourly")
	var size int64
	if err := owner.QueryRow(ctx, `SELECT hypertable_size('monitoring.active_windows')`).Scan(&size); err != nil || size == 0 {
		t.Errorf("the owner's hypertable_size: %d, %v", size, err)
	}
	var before, after int64
	if err := owner.QueryRow(ctx, `SELECT before_compression_total_bytes, after_compression_total_bytes
		FROM hypertable_compression_stats('monitoring.active_windows')`).Scan(&before, &after); err != nil || before == 0 || after == 0 {
		t.Errorf("the owner's hypertable_compression_stats: %d → %d, %v", before, after, err)
	}

	// Ingest: a new row today and a late one into a compressed chunk,
	// through the insert function (00020).
	ingest := pg.Pool(t, db.IngestURL, 2)
	var inserted int
	err = postgres.InTenant(ctx, ingest, postgres.Tenant{OrganizationID: a.OrganizationID}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT monitoring.insert_active_windows('monitoring', $2, $3, ARRAY[$1, $4]::uuid[], ARRAY[1, 2]::bigint[],
			ARRAY['agent-1', 'agent-1'], ARRAY['PC-1', 'PC-1'], ARRAY['S-1', 'S-1'], ARRAY[NULL, NULL]::text[], ARRAY[NULL, NULL]::text[],
			ARRAY[NULL, NULL]::text[], ARRAY[now(), now() - interval '20 days'], ARRAY[7, 7])`,
			uuid.Must(uuid.NewV7()), a.OrganizationID, a.GatewayID, uuid.Must(uuid.NewV7())).Scan(&inserted)
	})
	if err != nil || inserted != 2 {
		t.Fatalf("ingest into the hypertable (today and a compressed chunk): %d rows, %v; want 2", inserted, err)
	}
	// The late row, below the aggregate's watermark, counts from the next
	// refresh on.
	job("policy_refresh_continuous_aggregate", "activity_hourly")
	// Reads: both organisations' own rows, the aggregate included.
	for _, o := range []int64{a.OrganizationID, b.OrganizationID} {
		err := postgres.InTenant(ctx, dash, postgres.Tenant{OrganizationID: o, Role: postgres.AppOrgAdmin}, func(tx pgx.Tx) error {
			var rows, foreign, hours, events int64
			if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE organization_id <> $1) FROM monitoring_read.active_windows`, o).Scan(&rows, &foreign); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(window_events), 0) FROM monitoring_read.activity_hourly`).Scan(&hours, &events); err != nil {
				return err
			}
			if foreign != 0 || rows < 91 || events != rows {
				return fmt.Errorf("%d rows (%d foreign), %d events in %d hours; want ≥ 91 own rows, all counted by the aggregate", rows, foreign, events, hours)
			}
			return nil
		})
		if err != nil {
			t.Errorf("organisation %d reads: %v", o, err)
		}
	}
}

// TestTimescaleDBCompressedChunksClosedToRuntimeRoles: TimescaleDB copies
// a hypertable's grants to its chunks, compressed hypertable and compressed
// chunks; migration 00019 revoked them on the compressed ones, and since
// 00020 the runtime roles hold nothing on the hypertables, so nothing on
// any chunk. The ingest role writes a compressed chunk's range only through
// the insert function, in its own organisation, and never a chunk or the
// compressed data directly.
func TestTimescaleDBCompressedChunksClosedToRuntimeRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, admin, a, b := seedTwo(ctx, t)
	if storageKind(ctx, t, admin) != "timescaledb" {
		t.Skip(skipUnlessTimescaleDB)
	}
	seriesRows(ctx, t, admin, "monitoring", []int64{a.OrganizationID, b.OrganizationID}, 10)
	if n := compressOlderThan(ctx, t, db.OwnerURL, 7*24*time.Hour); n < 5 {
		t.Fatalf("%d compressed chunks, want at least one per hypertable", n)
	}
	var chunk, compressed string
	var at time.Time
	var storedID uuid.UUID
	if err := admin.QueryRow(ctx, `SELECT format('%I.%I', c.chunk_schema, c.chunk_name), cc.oid::regclass::text, w.datetime, w.id
		FROM timescaledb_information.chunks c
		JOIN _timescaledb_catalog.chunk k ON k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name
		JOIN _timescaledb_catalog.chunk kc ON kc.id = k.compressed_chunk_id
		JOIN pg_class cc ON cc.oid = format('%I.%I', kc.schema_name, kc.table_name)::regclass
		JOIN monitoring.user_sessions w ON w.datetime >= c.range_start AND w.datetime < c.range_end AND w.organization_id = $1
		WHERE c.hypertable_schema = 'monitoring' AND c.hypertable_name = 'user_sessions' AND c.is_compressed
		ORDER BY c.range_start LIMIT 1`, a.OrganizationID).Scan(&chunk, &compressed, &at, &storedID); err != nil {
		t.Fatal(err)
	}

	ingest := pg.Pool(t, db.IngestURL, 2)
	insert := func(sql string, args ...any) (int, error) {
		var n int
		err := postgres.InTenant(ctx, ingest, postgres.Tenant{OrganizationID: a.OrganizationID}, func(tx pgx.Tx) error {
			if strings.HasPrefix(sql, "SELECT") {
				return tx.QueryRow(ctx, sql, args...).Scan(&n)
			}
			tag, err := tx.Exec(ctx, sql, args...)
			n = int(tag.RowsAffected())
			return err
		})
		return n, err
	}
	const cols = `(id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)`
	const fn = `SELECT monitoring.insert_user_sessions('monitoring', $2, $3, ARRAY[$1::uuid], ARRAY[9::bigint], ARRAY['agent-1'], ARRAY['PC-1'],
		ARRAY['S-1'], ARRAY[$5::text], ARRAY[$4::timestamptz])`
	tests := []struct {
		name, sql string
		args      []any
		wantErr   string // "" = succeeds
		wantRows  int
	}{
		{"own organisation through the function, into the compressed range", fn,
			[]any{uuid.Must(uuid.NewV7()), a.OrganizationID, a.GatewayID, at, "logoff"}, "", 1},
		{"a compressed duplicate through the function is skipped", fn,
			[]any{storedID, a.OrganizationID, a.GatewayID, at, "login"}, "", 0},
		{"other organisation through the function", fn,
			[]any{uuid.Must(uuid.NewV7()), b.OrganizationID, a.GatewayID, at, "login"}, `new row violates row-level security policy for table "user_sessions"`, 0},
		{"own organisation straight into the hypertable", `INSERT INTO monitoring.user_sessions ` + cols +
			` VALUES ($1, $2, $3, 9, 'agent-1', 'PC-1', 'S-1', 'login', $4) ON CONFLICT DO NOTHING`,
			[]any{uuid.Must(uuid.NewV7()), a.OrganizationID, a.GatewayID, at}, "permission denied for table user_sessions", 0},
		{"other organisation straight into the chunk", `INSERT INTO ` + chunk + ` ` + cols +
			` VALUES ($1, $2, $3, 9, 'agent-1', 'PC-1', 'S-1', 'login', $4)`,
			[]any{uuid.Must(uuid.NewV7()), b.OrganizationID, a.GatewayID, at}, "permission denied for table _hyper_", 0},
		{"straight into the compressed chunk", `INSERT INTO ` + compressed + ` (organization_id, _ts_meta_count) VALUES ($1, 1)`,
			[]any{b.OrganizationID}, "permission denied", 0},
	}
	for _, tt := range tests {
		n, err := insert(tt.sql, tt.args...)
		switch {
		case tt.wantErr == "" && (err != nil || n != tt.wantRows):
			t.Errorf("%s: %d rows, %v; want %d", tt.name, n, err, tt.wantRows)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	var own, foreign, dup int
	if err := admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE organization_id = $1), count(*) FILTER (WHERE organization_id NOT IN ($1, $2)),
			count(*) FILTER (WHERE id = $4)
		FROM monitoring.user_sessions WHERE datetime = $3`, a.OrganizationID, b.OrganizationID, at, storedID).Scan(&own, &foreign, &dup); err != nil {
		t.Fatal(err)
	}
	if own != 2 || foreign != 0 || dup != 1 {
		t.Errorf("at %s: %d rows of the organisation (want 2), %d of unknown ones (want 0), the duplicate %d times (want 1)", at, own, foreign, dup)
	}
	// Chunks and compressed chunks made from now on copy their hypertable's
	// grants: the owner's only.
	rows, err := admin.Query(ctx, `SELECT rel || ' ' || r FROM (
			SELECT format('%I.%I', k.schema_name, k.table_name) AS rel
			FROM _timescaledb_catalog.hypertable u JOIN _timescaledb_catalog.chunk k ON k.hypertable_id = u.compressed_hypertable_id
			WHERE u.schema_name = 'monitoring'
			UNION ALL
			SELECT format('%I.%I', k.schema_name, k.table_name)
			FROM _timescaledb_catalog.hypertable u JOIN _timescaledb_catalog.chunk k ON k.hypertable_id = u.id
			WHERE u.schema_name = 'monitoring'
			UNION ALL
			SELECT format('%I.%I', u.schema_name, u.table_name)
			FROM _timescaledb_catalog.hypertable u WHERE u.schema_name = 'monitoring'
			UNION ALL
			SELECT format('%I.%I', h.schema_name, h.table_name)
			FROM _timescaledb_catalog.hypertable u JOIN _timescaledb_catalog.hypertable h ON h.id = u.compressed_hypertable_id
			WHERE u.schema_name = 'monitoring') c,
		unnest(ARRAY['staff_ingest', 'staff_dashboard', 'staff_admin']) r
		WHERE has_table_privilege(r, c.rel, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')`)
	if err != nil {
		t.Fatal(err)
	}
	open, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(open) > 0 {
		t.Errorf("runtime roles hold privileges on hypertables, chunks, compressed hypertables or compressed chunks: %v", open)
	}
	var compressedChunks int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM _timescaledb_catalog.hypertable u
		JOIN _timescaledb_catalog.chunk k ON k.hypertable_id = u.compressed_hypertable_id WHERE u.schema_name = 'monitoring'`).Scan(&compressedChunks); err != nil {
		t.Fatal(err)
	}
	if compressedChunks < 5 {
		t.Errorf("%d compressed chunks checked, want ≥ 5", compressedChunks)
	}
}

// hourlyRow is one row of monitoring_read.activity_hourly.
type hourlyRow struct {
	Bucket        time.Time
	Org           int64
	UserSID       string
	ComputerUID   string
	WindowEvents  int64
	ActiveSeconds int64
}

// activityHourly reads monitoring_read.activity_hourly in tenant's
// context, and the same hours computed by the partition path's definition
// (00017: UTC hours of monitoring_read.active_windows, the store's rows and
// the fallback's the store does not hold) from the same rows.
func activityHourly(ctx context.Context, pool postgres.Beginner, tenant postgres.Tenant) (got, want []hourlyRow, err error) {
	err = postgres.InTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
		for _, q := range []struct {
			sql string
			dst *[]hourlyRow
		}{
			{`SELECT bucket, organization_id, user_sid, computer_uid, window_events, active_seconds
				FROM monitoring_read.activity_hourly ORDER BY 1, 2, 3, 4`, &got},
			{`SELECT date_trunc('hour', datetime, 'UTC'), organization_id, user_sid, computer_uid,
					count(*), coalesce(sum(duration_seconds), 0)::bigint
				FROM monitoring_read.active_windows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`, &want},
		} {
			rows, err := tx.Query(ctx, q.sql)
			if err != nil {
				return err
			}
			if *q.dst, err = pgx.CollectRows(rows, pgx.RowToStructByPos[hourlyRow]); err != nil {
				return err
			}
		}
		return nil
	})
	return got, want, err
}

// TestContinuousAggregateAnswersLikeThePartitionPath (TimescaleDB only)
// checks that monitoring_read.activity_hourly, read from the real-time
// continuous aggregate plus the fallback's rows, answers exactly as the
// partition path's definition does for the same rows: for two
// organisations (each seeing only its own) and the platform ADMIN, with
// materialised hours, the newest hour (after the watermark), fallback rows
// alone, beside the store's and duplicating them, rows written later below
// the watermark once the refresh job ran, and hours retention dropped.
func TestContinuousAggregateAnswersLikeThePartitionPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, admin, a, b := seedTwo(ctx, t)
	if storageKind(ctx, t, admin) != "timescaledb" {
		t.Skip(skipUnlessTimescaleDB + " (the partition path's view is that definition itself)")
	}
	owner, err := pgx.Connect(ctx, db.OwnerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(ctx)
	orgs := []int64{a.OrganizationID, b.OrganizationID}
	// Raw rows over 100 days (some beyond the 90-day retention), several
	// users and computers, some without a duration, the current hour too.
	insert := func(schema, interval string, n int) {
		t.Helper()
		if _, err := admin.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.active_windows
				(id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, process_name, datetime, duration_seconds)
			SELECT gen_random_uuid(), o, gen_random_uuid(), i, 'agent-1', 'PC-' || (i %% 2), 'S-' || (i %% 3), 'code.exe',
				now() - random() * interval '%s', CASE WHEN i %% 5 = 0 THEN NULL ELSE i %% 60 END
			FROM unnest($1::bigint[]) o, generate_series(1, $2) i`, schema, interval), orgs, n); err != nil {
			t.Fatalf("%s rows: %v", schema, err)
		}
	}
	insert("monitoring", "100 days", 400)
	insert("monitoring", "10 minutes", 20)
	compare := func(step string, wantNewest bool) {
		t.Helper()
		tenants := []struct {
			pool   postgres.Beginner
			tenant postgres.Tenant
		}{
			{pg.Pool(t, db.DashboardURL, 1), postgres.Tenant{OrganizationID: a.OrganizationID, Role: postgres.AppOrgAdmin}},
			{pg.Pool(t, db.DashboardURL, 1), postgres.Tenant{OrganizationID: b.OrganizationID, Role: postgres.AppHR}},
			{pg.Pool(t, db.PlatformAdminURL, 1), postgres.Tenant{Role: postgres.AppAdmin}},
		}
		newest := time.Now().UTC().Truncate(time.Hour)
		for _, tc := range tenants {
			got, want, err := activityHourly(ctx, tc.pool, tc.tenant)
			if err != nil {
				t.Fatalf("%s: %+v: %v", step, tc.tenant, err)
			}
			if len(want) == 0 {
				t.Fatalf("%s: %+v: the partition path's definition answers nothing; the test proves nothing", step, tc.tenant)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: %+v: the aggregate answers %d rows, the partition path %d; first difference: %s",
					step, tc.tenant, len(got), len(want), firstDifference(got, want))
			}
			orgsSeen := map[int64]bool{}
			sawNewest := false
			for _, r := range got {
				orgsSeen[r.Org] = true
				sawNewest = sawNewest || r.Bucket.Equal(newest)
			}
			if wantOrgs := map[bool]int{true: 2, false: 1}[tc.tenant.OrganizationID == 0]; len(orgsSeen) != wantOrgs ||
				(tc.tenant.OrganizationID != 0 && !orgsSeen[tc.tenant.OrganizationID]) {
				t.Errorf("%s: %+v sees organisations %v", step, tc.tenant, orgsSeen)
			}
			if wantNewest && !sawNewest {
				t.Errorf("%s: %+v: the newest hour %s is missing", step, tc.tenant, newest)
			}
		}
	}
	compare("before any refresh (all real time)", true)

	// Materialise all but the last two hours, as the policy would.
	var matID int
	if err := owner.QueryRow(ctx, `SELECT mat_hypertable_id FROM _timescaledb_catalog.continuous_agg
		WHERE user_view_schema = 'monitoring' AND user_view_name = 'activity_hourly'`).Scan(&matID); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, `CALL refresh_continuous_aggregate('monitoring.activity_hourly', NULL, date_trunc('hour', now()) - interval '2 hours')`); err != nil {
		t.Fatal(err)
	}
	var watermark time.Time
	var materialised int
	if err := owner.QueryRow(ctx, fmt.Sprintf(`SELECT _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(%d)),
		(SELECT count(*) FROM _timescaledb_internal._materialized_hypertable_%d)`, matID, matID)).Scan(&watermark, &materialised); err != nil {
		t.Fatal(err)
	}
	// The watermark is the end of the newest materialised hour with rows.
	if materialised == 0 || time.Since(watermark) < 2*time.Hour || time.Since(watermark) > 30*24*time.Hour {
		t.Fatalf("after the refresh: %d materialised rows, watermark %s; want rows and the watermark at least 2 hours back", materialised, watermark)
	}
	// The newest hour, and the fallback: rows of its own in materialised
	// and newest hours, and copies of stored rows (not counted twice).
	insert("monitoring", "10 minutes", 10)
	insert("monitoring_fallback", "5 days", 30)
	insert("monitoring_fallback", "10 minutes", 5)
	if _, err := admin.Exec(ctx, `INSERT INTO monitoring_fallback.active_windows SELECT * FROM monitoring.active_windows
		WHERE datetime > now() - interval '3 days' ORDER BY id LIMIT 25`); err != nil {
		t.Fatal(err)
	}
	compare("materialised, newest hour and fallback rows", true)

	// Rows written below the watermark count once the refresh job ran.
	insert("monitoring", "30 days", 15)
	var refreshJob, retentionJob int
	if err := owner.QueryRow(ctx, `SELECT
		(SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate'
		   AND hypertable_name = 'activity_hourly'),
		(SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'
		   AND hypertable_schema = 'monitoring' AND hypertable_name = 'active_windows')`).Scan(&refreshJob, &retentionJob); err != nil {
		t.Fatal(err)
	}
	runJob := func(id int) {
		t.Helper()
		if _, err := owner.Exec(ctx, fmt.Sprintf(`CALL run_job(%d)`, id)); err != nil {
			t.Fatalf("CALL run_job(%d): %v", id, err)
		}
	}
	runJob(refreshJob)
	compare("late rows after the refresh job", true)

	// Retention drops the raw days beyond 90; the aggregate follows at the
	// next refresh.
	runJob(retentionJob)
	runJob(refreshJob)
	var oldest time.Time
	if err := admin.QueryRow(ctx, `SELECT min(bucket) FROM monitoring.activity_hourly`).Scan(&oldest); err != nil {
		t.Fatal(err)
	}
	if time.Since(oldest) > 92*24*time.Hour {
		t.Errorf("after retention and refresh the aggregate still starts at %s", oldest)
	}
	compare("after retention and the refresh job", false)
}

// firstDifference describes where two sorted answers first differ.
func firstDifference(got, want []hourlyRow) string {
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			return fmt.Sprintf("missing %+v", want[i])
		case i >= len(want):
			return fmt.Sprintf("extra %+v", got[i])
		case got[i] != want[i]:
			return fmt.Sprintf("got %+v, want %+v", got[i], want[i])
		}
	}
	return "none"
}
