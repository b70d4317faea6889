package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// adminActor is who staffctl acts as: the platform administrator.
func adminActor() accounts.Actor {
	return accounts.Actor{Name: "staffctl", Tenant: postgres.Tenant{Role: postgres.AppAdmin, Actor: "staffctl"}}
}

// connectAdmin connects as the platform admin role (staff_admin), the only
// login under which an ADMIN context sees every organisation: dsn (an
// administrator's URL) with its user replaced by staff_admin (the password
// comes from ~/.pgpass or PGPASSFILE, or local trust). It signs with the
// database's current tenant context key, which the administrator's URL can
// read as the owner role.
func connectAdmin(ctx context.Context, dsn string, maxConns int32) (*pgxpool.Pool, error) {
	return connectAs(ctx, dsn, postgres.RoleAdmin, maxConns)
}

// connectAs connects as the runtime role role: dsn (an administrator's
// URL) with its user replaced, signing with the database's current tenant
// context key, which the administrator's URL can read as the owner role.
func connectAs(ctx context.Context, dsn, role string, maxConns int32) (*pgxpool.Pool, error) {
	key, err := postgres.CurrentContextKey(ctx, dsn)
	if err != nil {
		return nil, err
	}
	u, err := postgres.WithUser(dsn, role, "")
	if err != nil {
		return nil, err
	}
	return postgres.Connect(ctx, u, maxConns, key)
}

// newFlags returns a flag set for a subcommand, with --database-url.
func newFlags(e env, name, usage string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("staffctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	dbURL := fs.String("database-url", "", "administrator's PostgreSQL URL (default: $DATABASE_URL)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: staffctl %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	return fs, dbURL
}

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// databaseURL is the --database-url flag or DATABASE_URL.
func databaseURL(e env, flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := e.getenv("DATABASE_URL"); v != "" {
		return v, nil
	}
	return "", usagef("a database is required: pass --database-url or set DATABASE_URL (an administrator's URL, e.g. postgres://postgres@127.0.0.1:5432/staffcontrol)")
}

// withAccounts connects to the database and runs fn with an accounts service.
func withAccounts(ctx context.Context, dsn string, fn func(*accounts.Service) error) error {
	pool, err := connectAdmin(ctx, dsn, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(accounts.New(pool, time.Now))
}

// resolveOrg turns --org (an id or a slug) into an organisation id.
func resolveOrg(ctx context.Context, svc *accounts.Service, org string) (int64, error) {
	if org == "" {
		return 0, nil
	}
	if id, err := strconv.ParseInt(org, 10, 64); err == nil {
		if id <= 0 {
			return 0, &apperr.FieldError{Field: "org", Message: "must be a positive id or a slug"}
		}
		return id, nil
	}
	o, err := svc.OrganizationBySlug(ctx, adminActor(), org)
	if errors.Is(err, accounts.ErrNotFound) {
		return 0, &apperr.FieldError{Field: "org", Message: fmt.Sprintf("no organisation with slug %q", org)}
	}
	return o.ID, err
}
