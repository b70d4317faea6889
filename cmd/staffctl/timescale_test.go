package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgcluster"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// envTimescaleURL names the environment variable with an administrator's
// URL of a PostgreSQL server that preloads TimescaleDB, where the tests
// create the separate time-series databases of `up --timescale-url`.
const envTimescaleURL = "TEST_TIMESCALE_URL"

var storeDBs atomic.Int64

// newServerDatabase creates an empty database on the server at adminURL
// and drops it when t ends; it returns the administrator's URL of it.
func newServerDatabase(t *testing.T, adminURL string) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("sctest_up_%d_%d", os.Getpid(), storeDBs.Add(1))
	exec := func(q string) error {
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, q)
		return err
	}
	if err := exec("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if err := exec("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := postgres.WithDatabase(adminURL, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// preloadsTimescale reports whether the server at adminURL preloads
// TimescaleDB (so that the bootstrap creates the extension in a new
// database).
func preloadsTimescale(t *testing.T, adminURL string) bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ok bool
	err = conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
		AND pg_has_role(current_user, 'pg_read_all_settings', 'USAGE')
		AND current_setting('shared_preload_libraries') ~ 'timescaledb'`).Scan(&ok)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// startUp runs `staffctl up` with args and environ until its summary is
// printed; it returns the output and a function that stops it (as Ctrl-C
// does) and returns what up returned.
func startUp(t *testing.T, environ map[string]string, args ...string) (*lockedBuffer, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"up"}, args...), func(k string) string { return environ[k] }, out, errOut)
	}()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("up did not stop within 30 s of Ctrl-C")
		}
	}
	t.Cleanup(func() { cancel() })
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); {
		if strings.Contains(out.String(), "Press Ctrl-C to stop.") {
			return out, stop
		}
		select {
		case err := <-done:
			t.Fatalf("up exited early: %v\nstdout: %s\nstderr: %s", err, out.String(), errOut.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("up printed no summary within 120 s:\n%s\n%s", out.String(), errOut.String())
	return nil, nil
}

// countRows counts the rows of the five time-series tables of schema in the
// database at adminURL.
func countRows(ctx context.Context, t *testing.T, adminURL, schema string) int64 {
	t.Helper()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	q := fmt.Sprintf(`SELECT (SELECT count(*) FROM %[1]s.active_windows) + (SELECT count(*) FROM %[1]s.visited_sites)
		+ (SELECT count(*) FROM %[1]s.user_sessions) + (SELECT count(*) FROM %[1]s.screenshots) + (SELECT count(*) FROM %[1]s.device_events)`,
		pgx.Identifier{schema}.Sanitize())
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUpWithSeparateTimeSeriesStore runs `staffctl up --timescale-url` on
// both engines: the store is migrated and given the context key, up says
// what the series are there, the simulated agents' events land in the
// store's tables (hypertable chunks on TimescaleDB) and none in the main
// database, neither in its series nor in its fallback.
func TestUpWithSeparateTimeSeriesStore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		kind string // what the store's series must be
		// server returns an administrator's URL of the server holding the
		// store, or a reason to skip.
		server func(t *testing.T) (string, string)
	}{
		{name: "native partitions", kind: kindPartitions, server: func(t *testing.T) (string, string) {
			if !preloadsTimescale(t, pg.AdminURL()) {
				return pg.AdminURL(), ""
			}
			// A new database on the test server would get hypertables:
			// a throwaway cluster of its own (TimescaleDB not preloaded).
			c, err := pgcluster.Start(context.Background(), pgcluster.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			return c.URL("postgres"), ""
		}},
		{name: "TimescaleDB", kind: kindTimescale, server: func(t *testing.T) (string, string) {
			if u := os.Getenv(envTimescaleURL); u != "" {
				return u, ""
			}
			if preloadsTimescale(t, pg.AdminURL()) {
				return pg.AdminURL(), ""
			}
			return "", envTimescaleURL + " is unset and the test server does not preload TimescaleDB: set it (or TEST_DATABASE_URL) to an administrator's URL of a server with timescaledb in shared_preload_libraries"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, skip := tc.server(t)
			if skip != "" {
				t.Skip(skip)
			}
			ctx := context.Background()
			mainURL := pg.NewEmptyDatabase(t).AdminURL
			storeURL := newServerDatabase(t, server)
			out, stop := startUp(t, nil, "--database-url", mainURL, "--timescale-url", storeURL,
				"--agent-addr", "127.0.0.1:0", "--dashboard-addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0",
				"--agents", "2", "--agent-rate", "50")

			line := regexp.MustCompile(`(?m)^  Time series     (.*)$`).FindStringSubmatch(out.String())
			if line == nil {
				t.Fatalf("no time-series line in the summary:\n%s", out.String())
			}
			want := "native partitions, not TimescaleDB: "
			if tc.kind == kindTimescale {
				want = "TimescaleDB 2."
			}
			if !strings.Contains(line[1], "(separate store; the fallback in the main database): "+want) || !strings.Contains(line[1], redacted(storeURL)) {
				t.Errorf("time-series line %q, want the store %s and %q", line[1], redacted(storeURL), want)
			}

			conn, err := pgx.Connect(ctx, storeURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var kind string
			if err := conn.QueryRow(ctx, `SELECT monitoring.storage_kind()`).Scan(&kind); err != nil {
				t.Fatal(err)
			}
			if kind != tc.kind {
				t.Fatalf("the store's series are %s, want %s", kind, tc.kind)
			}
			var stored int64
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && stored == 0; time.Sleep(200 * time.Millisecond) {
				stored = countRows(ctx, t, storeURL, "monitoring")
			}
			if stored == 0 {
				t.Fatalf("no simulated agent event reached the separate store within 60 s:\n%s", out.String())
			}
			if tc.kind == kindTimescale {
				// The rows are in hypertable chunks, not in a plain table.
				var chunks, inChunks int64
				err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM timescaledb_information.chunks
				        WHERE hypertable_schema = 'monitoring' AND hypertable_name = 'active_windows'),
				    (SELECT count(*) FROM monitoring.active_windows w JOIN pg_class c ON c.oid = w.tableoid
				        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '_timescaledb_internal')`).Scan(&chunks, &inChunks)
				if err != nil {
					t.Fatal(err)
				}
				if chunks == 0 || inChunks == 0 {
					t.Errorf("active_windows: %d chunks, %d rows in chunks; want both > 0", chunks, inChunks)
				}
			}
			if n := countRows(ctx, t, mainURL, "monitoring"); n != 0 {
				t.Errorf("the main database's series hold %d rows, want 0 (the store takes them)", n)
			}
			if n := countRows(ctx, t, mainURL, "monitoring_fallback"); n != 0 {
				t.Errorf("the main database's fallback holds %d rows, want 0 (the store was up)", n)
			}
			if err := stop(); err != nil {
				t.Fatalf("up returned %v", err)
			}
			if !strings.Contains(out.String(), "stopped cleanly") {
				t.Errorf("no clean stop reported:\n%s", out.String())
			}
			t.Logf("%s: %d events in the separate store", line[1], stored)
		})
	}
}

// TestUpTimescaleURLRefusals: up refuses a TIMESCALE_URL it would not
// migrate, a store that is the main database, and a TIMESCALE_URL that
// does not log in as the ingest role.
func TestUpTimescaleURLRefusals(t *testing.T) {
	t.Parallel()
	main := pg.NewEmptyDatabase(t)
	store := pg.NewEmptyDatabase(t)
	unreachable := "postgres://postgres@127.0.0.1:1/nothing?sslmode=disable"
	for _, tc := range []struct {
		name    string
		environ map[string]string
		args    []string
		usage   bool   // a usage error (exit code 2), before any connection
		want    string // in the error
	}{
		{name: "TIMESCALE_URL without --timescale-url", environ: map[string]string{"TIMESCALE_URL": unreachable},
			args: []string{"--database-url", unreachable}, usage: true, want: "--timescale-url is not"},
		{name: "the store is the main database", args: []string{"--database-url", unreachable, "--timescale-url", unreachable},
			usage: true, want: "names the main database"},
		{name: "TIMESCALE_URL of another role", environ: map[string]string{"TIMESCALE_URL": store.DashboardURL},
			args: []string{"--database-url", main.AdminURL, "--timescale-url", store.AdminURL}, want: "not the ingest role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := staffctl(t, tc.environ, append(append([]string{"up"}, tc.args...),
				"--agent-addr", "127.0.0.1:0", "--dashboard-addr", "127.0.0.1:0", "--gateway-addr", "")...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("up: %v, want an error with %q", err, tc.want)
			}
			if got := exitCode(err) == 2; got != tc.usage {
				t.Errorf("usage error: %v, want %v (%v)", got, tc.usage, err)
			}
		})
	}
}
