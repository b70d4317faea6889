// Package postgres connects the cloud services to PostgreSQL and holds the
// schema: the embedded, numbered migrations, the role bootstrap, and the one
// helper through which every tenant-scoped statement runs (InTenant).
//
// Roles (DESIGN.md §3): RoleOwner owns every object and runs migrations;
// RoleDashboard serves dashboard requests (no superuser, no BYPASSRLS, owns
// nothing, no privilege on partitions or chunks); RoleIngest writes the
// time series for authenticated gateways.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Database role names created by Bootstrap.
const (
	RoleOwner     = "staff_owner"
	RoleDashboard = "staff_dashboard"
	RoleIngest    = "staff_ingest"
)

// AppRole is a dashboard user's role, set as app.current_role for row-level
// security.
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
// organisation (the platform ADMIN, or no context at all).
type Tenant struct {
	OrganizationID int64
	Role           AppRole
}

// Connect opens a connection pool and checks that the server answers.
func Connect(ctx context.Context, dsn string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", redact(dsn), err)
	}
	return pool, nil
}

// Beginner is what InTenant needs of a pool or a single connection.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// InTenant runs fn inside one transaction whose first statement sets
// app.current_organization_id and app.current_role transaction-locally
// (set_config(..., true)). When fn returns, the transaction commits (or rolls
// back on error) and the settings vanish with it, so a pooled connection never
// carries one request's tenant into the next. Nothing in this code base issues
// a session-level SET.
func InTenant(ctx context.Context, db Beginner, t Tenant, fn func(pgx.Tx) error) error {
	org := ""
	if t.OrganizationID != 0 {
		org = strconv.FormatInt(t.OrganizationID, 10)
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx,
		"SELECT set_config('app.current_organization_id', $1, true), set_config('app.current_role', $2, true)",
		org, string(t.Role)); err != nil {
		return fmt.Errorf("postgres: set tenant context: %w", err)
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
