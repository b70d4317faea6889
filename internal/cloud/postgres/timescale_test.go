package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestTimescaleDBLayout checks the hypertable layout when the server has
// TimescaleDB loaded (point TEST_DATABASE_URL at such a server); on plain
// PostgreSQL it says so and skips. The native-partition layout is checked
// by every other test.
func TestTimescaleDBLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var kind string
	if err := conn.QueryRow(ctx, `SELECT monitoring.storage_kind()`).Scan(&kind); err != nil {
		t.Fatal(err)
	}
	if kind != "timescaledb" {
		t.Skip("TimescaleDB is not loaded on this server (needs the extension and shared_preload_libraries); " +
			"hypertable, retention, compression and continuous-aggregate checks skipped — the time series use native daily partitions here")
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
