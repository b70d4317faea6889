package main

import (
	"context"
	"fmt"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
)

func runMigrate(ctx context.Context, e env, args []string) error {
	fs, dbURL := newFlags(e, "migrate", "migrate up|down|status [--database-url URL]\n\n"+
		"  up      create the roles if missing, apply every pending migration and,\n"+
		"          when TENANT_CONTEXT_KEY is set, install that tenant context key\n"+
		"  down    roll back the latest applied migration\n"+
		"  status  list migrations and whether each is applied")
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fs.Usage()
		if len(args) == 0 {
			return usagef("migrate: a subcommand is required (up, down, status)")
		}
		return nil
	}
	sub := args[0]
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	dsn, err := databaseURL(e, *dbURL)
	if err != nil {
		return err
	}
	switch sub {
	case "up":
		steps, err := postgres.MigrateUp(ctx, dsn, nil)
		for _, s := range steps {
			fmt.Fprintf(e.stdout, "applied %05d %s\n", s.Version, s.Name)
		}
		if err != nil {
			return err
		}
		if len(steps) == 0 {
			fmt.Fprintln(e.stdout, "nothing to apply: the schema is up to date")
		}
		if v := e.getenv(service.KeyContextKey); v != "" {
			key, err := postgres.ParseContextKey(v)
			if err != nil {
				return fmt.Errorf("%s: %w", service.KeyContextKey, err)
			}
			if err := postgres.InstallContextKey(ctx, dsn, key); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "tenant context key %s installed\n", key.ID())
		}
		return nil
	case "down":
		m, err := postgres.NewMigrator(ctx, dsn, nil)
		if err != nil {
			return err
		}
		defer m.Close()
		step, err := m.Down(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "rolled back %05d %s\n", step.Version, step.Name)
		return nil
	case "status":
		m, err := postgres.NewMigrator(ctx, dsn, nil)
		if err != nil {
			return err
		}
		defer m.Close()
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range st {
			state := "pending"
			if s.Applied {
				state = "applied"
			}
			fmt.Fprintf(e.stdout, "%05d %-40s %s\n", s.Version, s.Name, state)
		}
		return nil
	}
	return usagef("migrate: unknown subcommand %q (want up, down or status)", sub)
}
