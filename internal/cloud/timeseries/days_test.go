package timeseries_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
)

func countPartitions(ctx context.Context, t *testing.T, conn *pgx.Conn, schema string) map[string]int {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT p.relname, count(*)::int FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r' GROUP BY 1`, schema)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	var name string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error { out[name] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEnsureDaysCreatesOnlyWhatIsNamed: EnsureDays creates the partitions
// of the named days, tables and schema only, none for a day past its
// table's retention, remembers them for its lifetime, and asks again
// after Forget (a partition dropped behind its back comes back).
func TestEnsureDaysCreatesOnlyWhatIsNamed(t *testing.T) {
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
	// Under TimescaleDB the store's tables are hypertables (chunks are the
	// extension's work: ensuring is a no-op, TestTimescaleDBLayout): the
	// same checks then run on the fallback's partitions, against an
	// untouched store.
	schema, other := timeseries.SchemaStore, timeseries.SchemaFallback
	if storageKind(ctx, t, admin) == "timescaledb" {
		schema, other = other, schema
	}
	clock := time.Now()
	d := timeseries.NewDays(time.Minute, func() time.Time { return clock })
	today := timeseries.DayOf(time.Now())
	// 399 and 300 days ago (the batch) and 200 days ago: sessions
	// keep 365 days, so 399 is not created; windows keep 90, so none is.
	days := []time.Time{today.AddDate(0, 0, -399), today.AddDate(0, 0, -300), today.AddDate(0, 0, -200)}
	beforeM, beforeF := countPartitions(ctx, t, admin, schema), countPartitions(ctx, t, admin, other)
	start := time.Now()
	n, err := d.EnsureDays(ctx, pool, schema, []string{"user_sessions", "active_windows"}, days)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ensured 3 days of 2 tables in %v", time.Since(start))
	if n != 2 {
		t.Errorf("created %d partitions, want 2 (user_sessions 300 and 200 days ago)", n)
	}
	afterM, afterF := countPartitions(ctx, t, admin, schema), countPartitions(ctx, t, admin, other)
	for table, before := range beforeM {
		want := before
		if table == "user_sessions" {
			want += 2
		}
		if afterM[table] != want {
			t.Errorf("%s.%s: %d partitions, want %d", schema, table, afterM[table], want)
		}
	}
	for table, before := range beforeF {
		if afterF[table] != before {
			t.Errorf("%s.%s: %d partitions, want %d (not written, not ensured)", other, table, afterF[table], before)
		}
	}
	// Remembered: dropping one behind its back is not noticed...
	dropped := schema + ".user_sessions_p" + days[2].Format("20060102")
	if _, err := admin.Exec(ctx, "DROP TABLE "+dropped); err != nil {
		t.Fatal(err)
	}
	if n, err := d.EnsureDays(ctx, pool, schema, []string{"user_sessions"}, days[1:]); err != nil || n != 0 {
		t.Fatalf("second call: %d, %v; want 0 (remembered)", n, err)
	}
	// ...until Forget, or until the memory lapses.
	d.Forget(pool, schema, []string{"user_sessions"}, days[2:])
	if n, err := d.EnsureDays(ctx, pool, schema, []string{"user_sessions"}, days[1:]); err != nil || n != 1 {
		t.Fatalf("after Forget: %d, %v; want 1 (the dropped partition again)", n, err)
	}
	if _, err := admin.Exec(ctx, "DROP TABLE "+dropped); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Minute)
	if n, err := d.EnsureDays(ctx, pool, schema, []string{"user_sessions"}, days[1:]); err != nil || n != 1 {
		t.Fatalf("after the memory lapsed: %d, %v; want 1", n, err)
	}
	// The fallback schema on its own.
	if n, err := d.EnsureDays(ctx, pool, timeseries.SchemaFallback, []string{"screenshots"}, []time.Time{today.AddDate(0, 0, -20)}); err != nil || n != 1 {
		t.Fatalf("fallback screenshots 20 days ago: %d, %v; want 1", n, err)
	}
	// Retention is read as the ingest role.
	ret, err := timeseries.NewRetention(pool, time.Minute, nil).Days(ctx)
	if err != nil || ret["screenshots"] != 30 || ret["user_sessions"] != 365 {
		t.Errorf("retention: %v, %v", ret, err)
	}
}
