package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

func TestMigrateUpDownUpOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewEmptyDatabase(t)

	steps, err := postgres.MigrateUp(ctx, db.AdminURL, nil)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if len(steps) < 2 {
		t.Fatalf("up applied %d migrations, want at least 2", len(steps))
	}
	latest := steps[len(steps)-1].Version
	// Rows of two organisations over 8 days, so that every Down runs on
	// data: with TimescaleDB in chunks, those older than 5 days compressed
	// (00013's Down decompresses them, 00014's meets compression).
	{
		admin, err := pgx.Connect(ctx, db.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		seriesRows(ctx, t, admin, "monitoring", []int64{1, 2}, 8)
		if storageKind(ctx, t, admin) == "timescaledb" {
			if n := compressOlderThan(ctx, t, db.OwnerURL, 5*24*time.Hour); n < 5 {
				t.Fatalf("%d compressed chunks, want at least one per hypertable", n)
			}
		}
		admin.Close(ctx)
	}

	m, err := postgres.NewMigrator(ctx, db.AdminURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Roll every step back, one at a time, down to an empty schema.
	for v := latest; v > 0; {
		step, err := m.Down(ctx)
		if err != nil {
			t.Fatalf("down from %d: %v", v, err)
		}
		if step.Version != v {
			t.Fatalf("down rolled back %d, want %d", step.Version, v)
		}
		got, err := m.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got >= v {
			t.Fatalf("version after down = %d, want < %d", got, v)
		}
		v = got
	}
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var leftovers int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname IN ('public', 'monitoring', 'monitoring_read') AND c.relname <> 'schema_migrations'
		AND c.relname NOT LIKE 'schema_migrations%'`).Scan(&leftovers); err != nil {
		t.Fatal(err)
	}
	if leftovers != 0 {
		t.Fatalf("%d relations left after rolling everything back", leftovers)
	}

	again, err := m.Up(ctx)
	if err != nil {
		t.Fatalf("up again: %v", err)
	}
	if len(again) != len(steps) {
		t.Fatalf("second up applied %d migrations, want %d", len(again), len(steps))
	}
	// Every object belongs to the owner role, whoever ran the migrations.
	var foreign int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname IN ('public', 'monitoring', 'monitoring_read') AND c.relowner <> 'staff_owner'::regrole`).Scan(&foreign); err != nil {
		t.Fatal(err)
	}
	if foreign != 0 {
		t.Fatalf("%d relations not owned by staff_owner", foreign)
	}
	// Up with nothing pending is a no-op.
	none, err := m.Up(ctx)
	if err != nil || len(none) != 0 {
		t.Fatalf("idempotent up: %d steps, err %v", len(none), err)
	}
}

// TestRuntimeRolesCannotCreateTempTablesOrLargeObjects migrates an empty
// database as `staffctl migrate up` does and checks that neither runtime
// role may create a temporary table or a large object there (issue 11).
func TestRuntimeRolesCannotCreateTempTablesOrLargeObjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewEmptyDatabase(t)
	if _, err := postgres.MigrateUp(ctx, db.AdminURL, nil); err != nil {
		t.Fatalf("up: %v", err)
	}
	for _, r := range []struct{ name, url string }{{postgres.RoleDashboard, db.DashboardURL}, {postgres.RoleIngest, db.IngestURL}} {
		conn, err := pgx.Connect(ctx, r.url)
		if err != nil {
			t.Fatal(err)
		}
		for _, sql := range []string{
			`CREATE TEMP TABLE scratch (a int)`,
			`SELECT lo_create(0)`,
			`SELECT lo_creat(-1)`,
			`SELECT lo_from_bytea(0, 'x'::bytea)`,
		} {
			if _, err := conn.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("%s: %s: %v, want permission denied", r.name, sql, err)
			}
		}
		conn.Close(ctx)
	}
}
