package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres/postgresdb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

//go:embed bootstrap.sql
var bootstrapSQL string

// versionTable records which migrations are applied.
const versionTable = "schema_migrations"

// Bootstrap creates the three roles and lets the owner create schemas in the
// database dsn points at. It is idempotent and needs a user allowed to create
// roles unless the roles exist already.
func Bootstrap(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("postgres: bootstrap: connect to %s: %w", redact(dsn), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Role creation is cluster-wide; serialise concurrent bootstraps.
	if err := postgresdb.New(conn).BootstrapLock(ctx); err != nil {
		return fmt.Errorf("postgres: bootstrap lock: %w", err)
	}
	if _, err := conn.Exec(ctx, bootstrapSQL); err != nil {
		return fmt.Errorf("postgres: bootstrap roles: %w", err)
	}
	return nil
}

// Migrator applies the embedded migrations as the owner role. It connects
// with an administrator's URL and assumes RoleOwner for the whole session
// (the connection's startup "role" parameter), so every object it creates is
// owned by RoleOwner.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
}

// NewMigrator prepares a migrator for the database at dsn, bootstrapping
// the roles first (see Bootstrap).
func NewMigrator(ctx context.Context, dsn string, logger *slog.Logger) (*Migrator, error) {
	if err := Bootstrap(ctx, dsn); err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database URL: %w", err)
	}
	cfg.RuntimeParams["role"] = RoleOwner
	db := stdlib.OpenDB(*cfg)
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("postgres: migration lock: %w", err)
	}
	opts := []goose.ProviderOption{
		goose.WithTableName(versionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, opts...)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	return &Migrator{db: db, provider: p}, nil
}

// Close releases the migrator's connections.
func (m *Migrator) Close() error { return m.provider.Close() }

// Step is one applied or rolled-back migration.
type Step struct {
	Version   int64
	Name      string
	Direction string
}

// Up applies every pending migration, in order, each in its own transaction.
func (m *Migrator) Up(ctx context.Context) ([]Step, error) {
	res, err := m.provider.Up(ctx)
	steps := toSteps(res)
	if err != nil {
		return steps, fmt.Errorf("postgres: migrate up: %w", err)
	}
	return steps, nil
}

// Down rolls back the latest applied migration.
func (m *Migrator) Down(ctx context.Context) (Step, error) {
	res, err := m.provider.Down(ctx)
	if err != nil {
		return Step{}, fmt.Errorf("postgres: migrate down: %w", err)
	}
	steps := toSteps([]*goose.MigrationResult{res})
	return steps[0], nil
}

// Status describes one migration and whether it is applied.
type Status struct {
	Version int64
	Name    string
	Applied bool
}

// Status lists every known migration.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: migration status: %w", err)
	}
	out := make([]Status, 0, len(st))
	for _, s := range st {
		out = append(out, Status{Version: s.Source.Version, Name: baseName(s.Source.Path), Applied: s.State == goose.StateApplied})
	}
	return out, nil
}

// Version is the latest applied migration (0 for none).
func (m *Migrator) Version(ctx context.Context) (int64, error) {
	v, err := m.provider.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: migration version: %w", err)
	}
	return v, nil
}

func toSteps(res []*goose.MigrationResult) []Step {
	out := make([]Step, 0, len(res))
	for _, r := range res {
		if r == nil || r.Source == nil {
			continue
		}
		out = append(out, Step{Version: r.Source.Version, Name: baseName(r.Source.Path), Direction: r.Direction})
	}
	return out
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

// MigrateUp bootstraps the roles and applies all migrations: what services
// do at start when configured to, and what `staffctl migrate up` does.
func MigrateUp(ctx context.Context, dsn string, logger *slog.Logger) ([]Step, error) {
	m, err := NewMigrator(ctx, dsn, logger)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.Up(ctx)
}
