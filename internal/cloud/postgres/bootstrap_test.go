package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgcluster"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// bootstrapState is what bootstrap.sql decided in one database.
type bootstrapState struct {
	extension  bool // timescaledb created in the database
	ownerLogin bool // staff_owner may log in (cluster-wide)
	statistics bool // PUBLIC may read TimescaleDB's statistics (only with the extension)
}

func readBootstrapState(ctx context.Context, t *testing.T, url string) bootstrapState {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s bootstrapState
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),
		(SELECT rolcanlogin FROM pg_roles WHERE rolname = 'staff_owner')`).Scan(&s.extension, &s.ownerLogin); err != nil {
		t.Fatal(err)
	}
	if s.extension {
		if err := conn.QueryRow(ctx, `SELECT bool_or(has_table_privilege('public', r, 'SELECT')) FROM unnest($1::text[]) r`,
			timescaleDBStatistics).Scan(&s.statistics); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestBootstrapCreatesTimescaleDBOnlyBeforeTheSeriesExist runs bootstrap.sql
// on clusters of its own (staff_owner's LOGIN is cluster-wide, so the
// shared test server cannot show it): the administrator creates the
// extension only where the server preloads it, the administrator may read
// that setting and schema monitoring does not exist yet (a database holding
// native partitions keeps them), and gives the owner LOGIN only once a
// database has the extension. It needs the TimescaleDB package installed
// in the local PostgreSQL and skips, saying so, where it is not.
func TestBootstrapCreatesTimescaleDBOnlyBeforeTheSeriesExist(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := func(settings map[string]string) *pgcluster.Cluster {
		t.Helper()
		c, err := pgcluster.Start(ctx, pgcluster.Options{Settings: settings})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	exec := func(url string, sql ...string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		for _, q := range sql {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	bootstrap := func(url string) {
		t.Helper()
		if err := postgres.Bootstrap(ctx, url); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, got, want bootstrapState) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %+v, want %+v", step, got, want)
		}
	}

	// Installed, not preloaded: CREATE EXTENSION would end the session.
	plain := start(nil)
	var available bool
	conn, err := pgx.Connect(ctx, plain.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')`).Scan(&available)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !available {
		t.Skip("the TimescaleDB package is not installed in the local PostgreSQL (no timescaledb.control): " +
			"bootstrap.sql leaves such a server alone, which every other test shows (native partitions, owner NOLOGIN)")
	}
	exec(plain.URL("postgres"), `CREATE DATABASE fresh`)
	bootstrap(plain.URL("fresh"))
	check("installed, not preloaded", readBootstrapState(ctx, t, plain.URL("fresh")), bootstrapState{})

	ts := start(map[string]string{"shared_preload_libraries": "timescaledb", "timescaledb.telemetry_level": "off"})
	exec(ts.URL("postgres"), `CREATE DATABASE native`, `CREATE DATABASE fresh`, `CREATE DATABASE delegated`,
		`CREATE ROLE dba LOGIN CREATEROLE CREATEDB`, `ALTER DATABASE delegated OWNER TO dba`)
	// The series exist already (natively partitioned): no extension, and
	// so no LOGIN for the owner.
	exec(ts.URL("native"), `CREATE SCHEMA monitoring`)
	bootstrap(ts.URL("native"))
	check("preloaded, schema monitoring exists", readBootstrapState(ctx, t, ts.URL("native")), bootstrapState{})
	// An administrator who may not read shared_preload_libraries (not a
	// superuser, no pg_read_all_settings) gets native partitions.
	delegated, err := postgres.WithUser(ts.URL("delegated"), "dba", "")
	if err != nil {
		t.Fatal(err)
	}
	bootstrap(delegated)
	check("preloaded, administrator without pg_read_all_settings", readBootstrapState(ctx, t, ts.URL("delegated")), bootstrapState{})
	// Preloaded, empty database, a superuser: the extension, the owner's
	// LOGIN, the statistics revoked — and the migrations then make
	// hypertables.
	bootstrap(ts.URL("fresh"))
	check("preloaded, empty database", readBootstrapState(ctx, t, ts.URL("fresh")), bootstrapState{extension: true, ownerLogin: true})
	if _, err := postgres.MigrateUp(ctx, ts.URL("fresh"), nil); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, ts.URL("fresh"))
	if err != nil {
		t.Fatal(err)
	}
	if kind := storageKind(ctx, t, conn); kind != "timescaledb" {
		t.Errorf("after the migrations: storage %s, want timescaledb", kind)
	}
	conn.Close(ctx)
	// Bootstrap again (every `staffctl migrate up`): nothing changes; the
	// native database still gets no extension.
	bootstrap(ts.URL("fresh"))
	bootstrap(ts.URL("native"))
	check("fresh, bootstrapped again", readBootstrapState(ctx, t, ts.URL("fresh")), bootstrapState{extension: true, ownerLogin: true})
	check("native, bootstrapped again", readBootstrapState(ctx, t, ts.URL("native")), bootstrapState{ownerLogin: true})
	// An extension update grants the statistics to PUBLIC again; the next
	// bootstrap revokes them.
	exec(ts.URL("fresh"), fmt.Sprintf(`GRANT SELECT ON %s TO PUBLIC`, timescaleDBStatistics[2]))
	check("after a re-grant", readBootstrapState(ctx, t, ts.URL("fresh")), bootstrapState{extension: true, ownerLogin: true, statistics: true})
	bootstrap(ts.URL("fresh"))
	check("re-grant, bootstrapped again", readBootstrapState(ctx, t, ts.URL("fresh")), bootstrapState{extension: true, ownerLogin: true})
}
