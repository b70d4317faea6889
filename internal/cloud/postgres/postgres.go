// Package postgres connects the cloud services to PostgreSQL and holds the
// schema: the embedded, numbered migrations, the role bootstrap, and the one
// helper through which every tenant-scoped statement runs (InTenant).
//
// Roles (DESIGN.md §3): RoleOwner owns every object and runs migrations;
// RoleDashboard serves dashboard requests (no superuser, no BYPASSRLS, owns
// nothing, no privilege on partitions or chunks); RoleIngest writes the
// time series for authenticated gateways; RoleAdmin is the only login under
// which a (signed) ADMIN context sees every organisation.
//
// The tenant context is signed (ContextKey) and verified by the database
// once per statement; see tenantctx.go and migration 00014.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Database role names created by Bootstrap.
const (
	RoleOwner     = "staff_owner"
	RoleDashboard = "staff_dashboard"
	RoleIngest    = "staff_ingest"
	RoleAdmin     = "staff_admin"
)

// AppRole is a dashboard user's role, signed into the tenant context for
// row-level security.
type AppRole string

// The application roles of DESIGN.md §3.
const (
	AppAdmin          AppRole = "ADMIN"
	AppOrgAdmin       AppRole = "ORG_ADMIN"
	AppHR             AppRole = "HR"
	AppDepartmentLead AppRole = "DEPARTMENT_LEAD"
	AppEmployee       AppRole = "EMPLOYEE"
)

// AppRoles lists every application role.
func AppRoles() []AppRole {
	return []AppRole{AppAdmin, AppOrgAdmin, AppHR, AppDepartmentLead, AppEmployee}
}

// ParseAppRole validates a role name.
func ParseAppRole(s string) (AppRole, error) {
	for _, r := range AppRoles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (want one of ADMIN, ORG_ADMIN, HR, DEPARTMENT_LEAD, EMPLOYEE)", s)
}

// Tenant is on whose behalf a transaction runs. OrganizationID 0 means no
// organisation (the platform ADMIN, or no context at all). Every field is
// signed into the context the database verifies.
type Tenant struct {
	OrganizationID int64
	Role           AppRole
	// UserID is the dashboard user acting (0: none, e.g. a gateway).
	UserID int64
	// Scope narrows the role: "department:<id>" (a department lead's
	// subtree), "employee:<id>" (an employee's own data) or empty.
	Scope string
	// Actor names who acts, for audit rows (at most 255 bytes are signed).
	Actor string
}

// Connect opens a connection pool and checks that the server answers.
// Every connection of the pool signs the tenant contexts InTenant sets with
// key; a pool connected with the zero key cannot run InTenant with a
// context (only Tenant{}, which matches no tenant row).
func Connect(ctx context.Context, dsn string, maxConns int32, key ContextKey) (*pgxpool.Pool, error) {
	pool, err := ConnectLazy(ctx, dsn, maxConns, key)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", redact(dsn), err)
	}
	return pool, nil
}

// ConnectLazy is Connect without the check that the server answers: for a
// store the service starts without (its connections are made on use).
func ConnectLazy(ctx context.Context, dsn string, maxConns int32, key ContextKey) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		AttachContextKey(c, key)
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return pool, nil
}

// Beginner is what InTenant needs of a pool or a single connection.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// InTenant runs fn inside one transaction whose first statement sets the
// signed tenant context app.tenant transaction-locally (set_config(...,
// true); see SetTenant). When fn returns, the transaction commits (or rolls
// back on error) and the setting vanishes with it, so a pooled connection
// never carries one request's tenant into the next. Nothing in this code
// base issues a session-level SET, and a context SQL sets by itself is not
// signed, so it matches nothing.
func InTenant(ctx context.Context, db Beginner, t Tenant, fn func(pgx.Tx) error) error {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := SetTenant(ctx, tx, t); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// WithUser returns dsn with its user (and password) replaced. The one-machine
// set-up derives the runtime roles' URLs from the administrator's this way.
func WithUser(dsn, user, password string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("postgres: database URL must look like postgres://user@host:port/dbname")
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String(), nil
}

// WithDatabase returns dsn pointing at another database on the same server.
func WithDatabase(dsn, dbname string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("postgres: database URL must look like postgres://user@host:port/dbname")
	}
	u.Path = "/" + dbname
	return u.String(), nil
}

// redact hides the password of a URL for error messages and logs.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
