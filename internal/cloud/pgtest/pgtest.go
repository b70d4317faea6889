// Package pgtest gives every test its own migrated PostgreSQL database.
//
// Once per test binary, Main starts a throwaway cluster from the local
// PostgreSQL binaries on a free loopback port (or uses TEST_DATABASE_URL, a
// user allowed to create roles and databases, when set), bootstraps the
// roles and migrates a template database. NewDatabase then copies the
// template for one test and drops the copy when the test ends. Clusters and
// databases left behind by a test binary that died are removed at the next
// start.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgcluster"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// EnvURL names the environment variable holding an administrator's URL of
// an existing server to use instead of a throwaway cluster.
const EnvURL = "TEST_DATABASE_URL"

// EnvRolePassword names the environment variable with the password the
// runtime roles log in with on a TEST_DATABASE_URL server (empty: none).
const EnvRolePassword = "TEST_ROLE_PASSWORD"

// Server is the PostgreSQL server a test binary uses.
type Server struct {
	adminURL     string
	cluster      *pgcluster.Cluster
	template     string
	prefix       string
	rolePassword string
	contextKey   postgres.ContextKey
	seq          atomic.Int64
}

// Main starts the server, stores it in *srv, runs the tests and cleans up.
// Call it from TestMain.
func Main(m *testing.M, srv **Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	s, err := Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.Exit(1)
	}
	*srv = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

// Start brings up the server and the migrated template database.
func Start(ctx context.Context) (*Server, error) {
	key, err := postgres.GenerateContextKey("test")
	if err != nil {
		return nil, err
	}
	s := &Server{prefix: fmt.Sprintf("sctest_%d_", os.Getpid()), rolePassword: os.Getenv(EnvRolePassword), contextKey: key}
	if u := os.Getenv(EnvURL); u != "" {
		s.adminURL = u
		if err := s.dropStale(ctx); err != nil {
			return nil, err
		}
	} else {
		pgcluster.Sweep()
		c, err := pgcluster.Start(ctx, pgcluster.Options{})
		if err != nil {
			return nil, err
		}
		s.cluster = c
		s.adminURL = c.URL("postgres")
	}
	s.template = s.prefix + "template"
	if err := s.exec(ctx, fmt.Sprintf("CREATE DATABASE %s", pgx.Identifier{s.template}.Sanitize())); err != nil {
		s.Close()
		return nil, fmt.Errorf("create template database: %w", err)
	}
	tmplURL, _ := postgres.WithDatabase(s.adminURL, s.template)
	// The migration log is checked like every test log (logtest).
	var migLog bytes.Buffer
	if _, err := postgres.MigrateUp(ctx, tmplURL, slog.New(slog.NewJSONHandler(&migLog, &slog.HandlerOptions{Level: slog.LevelDebug}))); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrate template database: %w", err)
	}
	if errs := logtest.Errors(&migLog); len(errs) > 0 {
		s.Close()
		return nil, fmt.Errorf("migration log: %w", errors.Join(errs...))
	}
	if err := postgres.InstallContextKey(ctx, tmplURL, s.contextKey); err != nil {
		s.Close()
		return nil, err
	}
	// Nobody may stay connected to the template, or CREATE DATABASE …
	// TEMPLATE fails ("being accessed by other users"): where the template
	// has TimescaleDB, its launcher starts a job scheduler in every
	// database that allows connections. Closed to connections (as
	// template0 is), it gets none, and copies of it still do.
	if err := s.closeTemplate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.rolePassword != "" {
		for _, r := range []string{postgres.RoleDashboard, postgres.RoleIngest, postgres.RoleAdmin} {
			q := fmt.Sprintf("ALTER ROLE %s PASSWORD %s", pgx.Identifier{r}.Sanitize(), quoteLiteral(s.rolePassword))
			if err := s.exec(ctx, q); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	return s, nil
}

// closeTemplate forbids connections to the template database and ends
// those still open (a TimescaleDB job scheduler's).
func (s *Server) closeTemplate(ctx context.Context) error {
	if err := s.exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS false", pgx.Identifier{s.template}.Sanitize())); err != nil {
		return fmt.Errorf("close template database: %w", err)
	}
	// An administrator who may not end them leaves them to exit (CREATE
	// DATABASE waits 5 s for that).
	if err := s.exec(ctx, fmt.Sprintf(`DO $$ BEGIN
		PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid();
		EXCEPTION WHEN insufficient_privilege THEN NULL; END $$`, quoteLiteral(s.template))); err != nil {
		return fmt.Errorf("close template database: %w", err)
	}
	return nil
}

// ContextKey is the tenant context key installed in every database made
// from the template: pass it to postgres.Connect, and install it
// (postgres.InstallContextKey) in a database migrated by hand.
func (s *Server) ContextKey() postgres.ContextKey { return s.contextKey }

// Pool connects to url (one of a Database's URLs) signing with the
// server's tenant context key, and closes the pool when t ends.
func (s *Server) Pool(t testing.TB, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Connect(context.Background(), url, maxConns, s.contextKey)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// AdminURL is the administrator's URL on the server's "postgres" database.
func (s *Server) AdminURL() string { return s.adminURL }

// Cluster is the throwaway cluster, or nil when TEST_DATABASE_URL is used.
func (s *Server) Cluster() *pgcluster.Cluster { return s.cluster }

// Close drops the template and stops the throwaway cluster.
func (s *Server) Close() {
	if s.cluster != nil {
		_ = s.cluster.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.dropStaleOwn(ctx)
}

// Database is one test's own migrated database.
type Database struct {
	// Name is the database name.
	Name string
	// AdminURL connects as the server's administrator (a superuser in the
	// throwaway cluster): use it only to arrange fixtures.
	AdminURL string
	// OwnerURL connects as the administrator assuming the owner role, as
	// migrations do.
	OwnerURL string
	// DashboardURL connects as the dashboard runtime role.
	DashboardURL string
	// IngestURL connects as the ingest runtime role.
	IngestURL string
	// PlatformAdminURL connects as the admin runtime role (staff_admin), the
	// only login under which a signed ADMIN context sees every organisation.
	PlatformAdminURL string
}

// NewDatabase creates a database from the migrated template for t and drops
// it when t ends.
func (s *Server) NewDatabase(t testing.TB) *Database {
	t.Helper()
	return s.newDatabase(t, fmt.Sprintf("TEMPLATE %s STRATEGY FILE_COPY", pgx.Identifier{s.template}.Sanitize()))
}

// NewEmptyDatabase creates an empty, unmigrated database for t and drops it
// when t ends.
func (s *Server) NewEmptyDatabase(t testing.TB) *Database {
	t.Helper()
	return s.newDatabase(t, "")
}

func (s *Server) newDatabase(t testing.TB, clause string) *Database {
	t.Helper()
	name := fmt.Sprintf("%s%d", s.prefix, s.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := fmt.Sprintf("CREATE DATABASE %s %s", pgx.Identifier{name}.Sanitize(), clause)
	if err := s.exec(ctx, q); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize())); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	admin, _ := postgres.WithDatabase(s.adminURL, name)
	dash, _ := postgres.WithUser(admin, postgres.RoleDashboard, s.rolePassword)
	ingest, _ := postgres.WithUser(admin, postgres.RoleIngest, s.rolePassword)
	platform, _ := postgres.WithUser(admin, postgres.RoleAdmin, s.rolePassword)
	return &Database{Name: name, AdminURL: admin, OwnerURL: withRole(admin, postgres.RoleOwner), DashboardURL: dash,
		IngestURL: ingest, PlatformAdminURL: platform}
}

func withRole(dsn, role string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	q.Set("options", "-c role="+role)
	// %20, not the "+" of form encoding: libpq URIs do not decode "+".
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String()
}

func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: %s: %w", sql, err)
	}
	return nil
}

// dropStale drops databases created by test binaries that no longer run.
func (s *Server) dropStale(ctx context.Context) error {
	return s.dropMatching(ctx, func(pid int) bool { return pid != os.Getpid() && !processAlive(pid) })
}

func (s *Server) dropStaleOwn(ctx context.Context) error {
	return s.dropMatching(ctx, func(pid int) bool { return pid == os.Getpid() })
}

func (s *Server) dropMatching(ctx context.Context, match func(pid int) bool) error {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return fmt.Errorf("pgtest: connect to %s: %w", EnvURL, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'sctest\\_%'")
	if err != nil {
		return fmt.Errorf("pgtest: list databases: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pgtest: list databases: %w", err)
	}
	for _, n := range names {
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(n, "sctest_"), "_")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil {
			continue
		}
		if match(pid) {
			_, _ = conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{n}.Sanitize()))
		}
	}
	return nil
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func quoteLiteral(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
