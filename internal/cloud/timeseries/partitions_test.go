package timeseries_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	if os.Getenv(envHelper) == "1" {
		// A re-sync helper process needs no cluster of its own.
		os.Exit(m.Run())
	}
	pgtest.Main(m, &pg)
}

// timescaleDB reports whether the database's store is TimescaleDB
// hypertables (TEST_DATABASE_URL on such a server) rather than native
// partitions.
func timescaleDB(ctx context.Context, t *testing.T, conn *pgx.Conn) bool {
	t.Helper()
	var kind string
	if err := conn.QueryRow(ctx, `SELECT monitoring.storage_kind()`).Scan(&kind); err != nil {
		t.Fatal(err)
	}
	return kind == "timescaledb"
}

// partitions lists the children of schema.table: its daily partitions
// (chunks, for a hypertable).
func partitions(ctx context.Context, t *testing.T, conn *pgx.Conn, schema, table string) []string {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = to_regclass($1 || '.' || $2) ORDER BY 1`, schema, table)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestMaintainerCreatesAheadAndDropsByRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	pool, err := postgres.Connect(ctx, db.IngestURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	m := timeseries.NewMaintainer(pool, logtest.New(t), prometheus.NewRegistry(), 8, 3)

	// The functions read the server's clock, so the data is made old
	// instead: partitions of 100 days ago (the windows, sites and
	// screenshots of that day are past their 90- and 30-day retention;
	// sessions and device events, 365 days, are not), and today + 3 of
	// active_windows missing in both schemas. With TimescaleDB the store's
	// chunks and their retention are TimescaleDB's (its policies, checked
	// in package postgres): the partitions are the fallback's only.
	schemas := []string{"monitoring", "monitoring_fallback"}
	if timescaleDB(ctx, t, admin) {
		schemas = schemas[1:]
	}
	base := time.Now().UTC()
	old := "_p" + base.AddDate(0, 0, -100).Format("20060102")
	ahead := "active_windows_p" + base.AddDate(0, 0, 3).Format("20060102")
	if _, err := admin.Exec(ctx, `SELECT monitoring.ensure_partitions(current_date - 100, current_date - 100)`); err != nil {
		t.Fatal(err)
	}
	for _, s := range schemas {
		if _, err := admin.Exec(ctx, `DROP TABLE `+s+`.`+ahead); err != nil {
			t.Fatal(err)
		}
	}
	res, err := m.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != len(schemas) {
		t.Errorf("created %d partitions, want %d (today + 3 of active_windows in %v)", res.Created, len(schemas), schemas)
	}
	dropped := strings.Join(res.Dropped, ",")
	expired := 0
	for _, s := range schemas {
		for _, table := range []string{"active_windows", "visited_sites", "screenshots"} {
			expired++
			if want := s + "." + table + old; !strings.Contains(dropped, want) {
				t.Errorf("%s not dropped (dropped: %s)", want, dropped)
			}
		}
	}
	if len(res.Dropped) != expired {
		t.Errorf("dropped %d partitions, want the %d expired ones: %v", len(res.Dropped), expired, res.Dropped)
	}
	for _, keep := range []string{"user_sessions" + old, "device_events" + old} {
		if strings.Contains(dropped, keep) {
			t.Errorf("%s dropped before its 365-day retention", keep)
		}
	}
	for _, s := range schemas {
		aw := partitions(ctx, t, admin, s, "active_windows")
		if len(aw) != 12 || aw[len(aw)-1] != ahead {
			t.Errorf("%s.active_windows has partitions %v after maintenance, want the 12 of today - 8 .. today + 3", s, aw)
		}
	}
	// Events for the new dates land in their partitions through the parent.
	if err := postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: 1}, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT monitoring.insert_user_sessions('monitoring', 1, gen_random_uuid(), ARRAY[gen_random_uuid()], ARRAY[1::bigint],
			ARRAY['a'], ARRAY['c'], ARRAY['s'], ARRAY['login'], ARRAY[$1::timestamptz])`, base.Add(2*24*time.Hour)).Scan(&n); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%d rows inserted, want 1", n)
		}
		return nil
	}); err != nil {
		t.Fatalf("insert into a partition created ahead: %v", err)
	}
	// A second run is a no-op.
	res, err = m.RunOnce(ctx)
	if err != nil || res.Created != 0 || len(res.Dropped) != 0 {
		t.Fatalf("second run: %+v, %v; want nothing to do", res, err)
	}
}

// TestIngestRoleCannotAbusePartitionMaintenance calls, as the ingest role,
// the partition functions with the arguments of issue 11's reproductions:
// the old caller-chosen-time signatures are refused, and the bounded ones
// create nothing past today + 3 or before retention, at most 200 per call,
// and drop nothing within retention.
func TestIngestRoleCannotAbusePartitionMaintenance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	ingest, err := pgx.Connect(ctx, db.IngestURL)
	if err != nil {
		t.Fatal(err)
	}
	defer ingest.Close(ctx)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// A row of each of two organisations today: both must survive.
	if _, err := admin.Exec(ctx, `INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, datetime)
		SELECT gen_random_uuid(), o, gen_random_uuid(), 1, 'a', 'c', 's', 't', 'p', now() FROM unnest(ARRAY[1, 2]) o`); err != nil {
		t.Fatal(err)
	}
	count := func() (parts, rows int) {
		t.Helper()
		if err := admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_class WHERE relispartition AND relkind = 'r'),
			(SELECT count(*) FROM monitoring.active_windows)`).Scan(&parts, &rows); err != nil {
			t.Fatal(err)
		}
		return parts, rows
	}
	parts0, rows0 := count()

	for _, sql := range []string{
		`SELECT monitoring.drop_expired_partitions('9999-12-31'::timestamptz)`,
		`SELECT monitoring.ensure_partitions('5000-01-01'::date, '5001-02-04'::date)`,
	} {
		if _, err := ingest.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as the ingest role: %v, want permission denied", sql, err)
		}
	}
	if parts, rows := count(); parts != parts0 || rows != rows0 {
		t.Fatalf("refused calls changed partitions %d → %d, rows %d → %d", parts0, parts, rows0, rows)
	}

	var created int
	if err := ingest.QueryRow(ctx, `SELECT monitoring.ensure_recent_partitions(1000000, 1000000)`).Scan(&created); err != nil {
		t.Fatal(err)
	}
	if parts, _ := count(); created != 200 || parts != parts0+200 {
		t.Errorf("ensure_recent_partitions(huge, huge) created %d (partitions %d → %d), want the bound of 200", created, parts0, parts)
	}
	var outside []string
	rows, err := admin.Query(ctx, `SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_inherits i ON i.inhrelid = c.oid
		JOIN monitoring.retention r ON i.inhparent = to_regclass(n.nspname || '.' || r.table_name)
		WHERE c.relname ~ '_p[0-9]{8}$' AND (to_date(right(c.relname, 8), 'YYYYMMDD') > (now() AT TIME ZONE 'UTC')::date + 3
		   OR to_date(right(c.relname, 8), 'YYYYMMDD') < (now() AT TIME ZONE 'UTC')::date - least(r.days, 62))`)
	if err == nil {
		outside, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(outside) > 0 {
		t.Errorf("partitions outside [today - retention, today + 3]: %v (%v)", outside, err)
	}
	// Repeated calls converge; nothing created is past retention, so the
	// drop that follows finds nothing to drop.
	for i := 0; i < 5 && created > 0; i++ {
		if err := ingest.QueryRow(ctx, `SELECT monitoring.ensure_recent_partitions(1000000, 1000000)`).Scan(&created); err != nil {
			t.Fatal(err)
		}
	}
	if created != 0 {
		t.Fatalf("ensure_recent_partitions still creating after 6 calls (%d)", created)
	}
	parts1, _ := count()
	var dropped []string
	rows, err = ingest.Query(ctx, `SELECT monitoring.drop_expired_partitions()`)
	if err == nil {
		dropped, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(dropped) != 0 {
		t.Fatalf("drop_expired_partitions() dropped %v (%v), want nothing within retention", dropped, err)
	}
	if parts, rows := count(); parts != parts1 || rows != rows0 {
		t.Fatalf("after the drop: partitions %d → %d, rows %d → %d; want both organisations' data kept", parts1, parts, rows0, rows)
	}
}

// TestMaintainerKeepsASeparateStoresPartitions: with a separate time-series
// store (TIMESCALE_URL) the store's native partitions are created ahead and
// dropped by retention too — before, only the main database's were, and an
// expired day of the store stayed for ever. A store that is down fails the
// run only after the main database's work is done. (On a TimescaleDB store
// its retention is its jobs', checked in jobs_test.go.)
func TestMaintainerKeepsASeparateStoresPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mainDB, storeDB := pg.NewDatabase(t), pg.NewDatabase(t)
	mainPool := pg.Pool(t, mainDB.IngestURL, 2)
	storePool := pg.Pool(t, storeDB.IngestURL, 2)
	storeAdmin, err := pgx.Connect(ctx, storeDB.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer storeAdmin.Close(ctx)
	if timescaleDB(ctx, t, storeAdmin) {
		t.Skip("the store's series are TimescaleDB hypertables here: their retention is the jobs' (jobs_test.go); this test is about a native-partition store")
	}
	base := time.Now().UTC()
	old := "active_windows_p" + base.AddDate(0, 0, -100).Format("20060102")
	ahead := "active_windows_p" + base.AddDate(0, 0, 3).Format("20060102")
	if _, err := storeAdmin.Exec(ctx, `SELECT monitoring.ensure_partitions(current_date - 100, current_date - 100)`); err != nil {
		t.Fatal(err)
	}
	if _, err := storeAdmin.Exec(ctx, `DROP TABLE monitoring.`+ahead); err != nil {
		t.Fatal(err)
	}
	m := timeseries.NewMaintainer(mainPool, logtest.New(t), prometheus.NewRegistry(), 8, 3)
	m.UseStore(storePool)
	res, err := m.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(res.Dropped, ","), "monitoring."+old) {
		t.Errorf("the store's expired %s was not dropped (dropped: %v)", old, res.Dropped)
	}
	aw := partitions(ctx, t, storeAdmin, "monitoring", "active_windows")
	if len(aw) != 12 || aw[len(aw)-1] != ahead {
		t.Errorf("the store's monitoring.active_windows has partitions %v, want the 12 of today - 8 .. today + 3", aw)
	}

	// The store goes away: the main database's maintenance still runs, and
	// the run reports the store.
	storePool.Close()
	if _, err := m.RunOnce(ctx); err == nil || !strings.Contains(err.Error(), "time-series store") {
		t.Fatalf("RunOnce with the store down: %v, want an error naming the time-series store", err)
	}
}

// TestMaintainerLeavesDropsToRetention: with LeaveDropsToRetention the
// maintainer still creates partitions but drops none (package retention
// drops them, counting their rows).
func TestMaintainerLeavesDropsToRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	pool, err := postgres.Connect(ctx, db.IngestURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `SELECT monitoring.ensure_partitions(current_date - 100, current_date - 100)`); err != nil {
		t.Fatal(err)
	}
	old := "screenshots_p" + time.Now().UTC().AddDate(0, 0, -100).Format("20060102")
	m := timeseries.NewMaintainer(pool, logtest.New(t), prometheus.NewRegistry(), 8, 3)
	m.LeaveDropsToRetention()
	res, err := m.RunPartitions(ctx)
	if err != nil || len(res.Dropped) != 0 {
		t.Fatalf("run: %+v, %v; want no drops", res, err)
	}
	if got := partitions(ctx, t, admin, "monitoring_fallback", "screenshots"); got[0] != old {
		t.Errorf("fallback screenshots partitions %v: %s dropped", got, old)
	}
}
