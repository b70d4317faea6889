package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// TestSeriesKeyIncludesOrganisation: after migration 00013 every
// time-series table of both schemas has the key (organization_id, id,
// datetime); its Down refuses, naming the table, while two organisations
// hold one id and time, and restores (id, datetime) once they do not.
func TestSeriesKeyIncludesOrganisation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewEmptyDatabase(t)
	if _, err := postgres.MigrateUp(ctx, db.AdminURL, nil); err != nil {
		t.Fatalf("up: %v", err)
	}
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	keys := func() map[string]string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT n.nspname || '.' || c.relname,
				(SELECT string_agg(a.attname, ', ' ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY k(att, i)
				 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.att)
			FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			JOIN monitoring.retention r ON r.table_name = c.relname
			WHERE con.contype = 'p' AND n.nspname IN ('monitoring', 'monitoring_fallback')`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for rows.Next() {
			var table, key string
			if err := rows.Scan(&table, &key); err != nil {
				t.Fatal(err)
			}
			out[table] = key
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(want string) {
		t.Helper()
		got := keys()
		if len(got) != 10 {
			t.Fatalf("%d time-series tables with a primary key, want 10 (5 per schema): %v", len(got), got)
		}
		for table, key := range got {
			if key != want {
				t.Errorf("%s: key (%s), want (%s)", table, key, want)
			}
		}
	}
	check("organization_id, id, datetime")

	m, err := postgres.NewMigrator(ctx, db.AdminURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Later migrations, if any, are rolled back first.
	for {
		v, err := m.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v <= 13 {
			break
		}
		if _, err := m.Down(ctx); err != nil {
			t.Fatalf("down from %d: %v", v, err)
		}
	}
	// One id and time in two organisations, in the fallback.
	if _, err := conn.Exec(ctx, `SELECT monitoring.ensure_partitions(current_date, current_date)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO monitoring_fallback.user_sessions (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
		SELECT '0190a6b4-0000-7000-8000-000000000001', o, gen_random_uuid(), 1, 'a', 'PC', 'S-1', 'login', date_trunc('hour', now())
		FROM generate_series(1, 2) o`); err != nil {
		t.Fatalf("the same id and time in two organisations: %v", err)
	}
	if _, err := m.Down(ctx); err == nil || !strings.Contains(err.Error(), "monitoring_fallback.user_sessions") {
		t.Fatalf("down with a cross-organisation collision: %v, want a refusal naming monitoring_fallback.user_sessions", err)
	}
	check("organization_id, id, datetime")
	if _, err := conn.Exec(ctx, `DELETE FROM monitoring_fallback.user_sessions WHERE organization_id = 2`); err != nil {
		t.Fatal(err)
	}
	step, err := m.Down(ctx)
	if err != nil {
		t.Fatalf("down: %v", err)
	}
	if step.Version != 13 {
		t.Fatalf("down rolled back %d, want 13", step.Version)
	}
	check("id, datetime")

	// Up again over stored rows (with TimescaleDB in chunks, some
	// compressed): the key changes, no row is lost, and compression and its
	// policy are back on every hypertable.
	seriesRows(ctx, t, conn, "monitoring", []int64{1, 2}, 8)
	tsdb := storageKind(ctx, t, conn) == "timescaledb"
	if tsdb {
		if n := compressOlderThan(ctx, t, db.OwnerURL, 5*24*time.Hour); n < 5 {
			t.Fatalf("%d compressed chunks, want at least one per hypertable", n)
		}
	}
	const rowsSQL = `SELECT (SELECT count(*) FROM monitoring.active_windows) + (SELECT count(*) FROM monitoring.visited_sites)
		+ (SELECT count(*) FROM monitoring.screenshots) + (SELECT count(*) FROM monitoring.user_sessions)
		+ (SELECT count(*) FROM monitoring.device_events)`
	var before, after int
	if err := conn.QueryRow(ctx, rowsSQL).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("up over stored rows: %v", err)
	}
	check("organization_id, id, datetime")
	if err := conn.QueryRow(ctx, rowsSQL).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before || before != 80 {
		t.Errorf("rows %d before the key change, %d after; want 80 both", before, after)
	}
	if tsdb {
		var settings, policies int
		if err := conn.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM timescaledb_information.compression_settings WHERE hypertable_schema = 'monitoring'
			   AND attname = 'organization_id' AND segmentby_column_index = 1),
			(SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression' AND hypertable_schema = 'monitoring')`).Scan(&settings, &policies); err != nil {
			t.Fatal(err)
		}
		if settings != 5 || policies != 5 {
			t.Errorf("after the key change: compression segmented by organisation on %d hypertables, %d compression policies; want 5 and 5", settings, policies)
		}
	}
}
