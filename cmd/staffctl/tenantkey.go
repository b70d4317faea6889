package main

import (
	"context"
	"fmt"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
)

const tenantKeyUsage = `usage: staffctl tenant-key generate [--id ID]
       staffctl tenant-key install [--database-url URL]   (the key is read from TENANT_CONTEXT_KEY)
       staffctl tenant-key retire --id ID [--database-url URL]

The tenant context key signs the context (organisation, role, user) every
service sets on its database transactions; the database verifies it.
Rotation: generate a key with a new id, install it, give it to the services
(TENANT_CONTEXT_KEY) and restart them, then retire the old id.
`

func runTenantKey(ctx context.Context, e env, args []string) error {
	sub, rest, err := subcommand(e, args, tenantKeyUsage, "generate", "install", "retire")
	if err != nil {
		return err
	}
	fs, dbURL := newFlags(e, "tenant-key "+sub, "tenant-key "+sub)
	id := fs.String("id", "k1", "key id (1-32 of A-Z a-z 0-9 _ -)")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	switch sub {
	case "generate":
		k, err := postgres.GenerateContextKey(*id)
		if err != nil {
			return usagef("tenant-key generate: --id: %v", err)
		}
		fmt.Fprintln(e.stdout, k.String())
		return nil
	case "install":
		v := e.getenv(service.KeyContextKey)
		if v == "" {
			return usagef("tenant-key install: set %s to the key (staffctl tenant-key generate)", service.KeyContextKey)
		}
		k, err := postgres.ParseContextKey(v)
		if err != nil {
			return fmt.Errorf("%s: %w", service.KeyContextKey, err)
		}
		dsn, err := databaseURL(e, *dbURL)
		if err != nil {
			return err
		}
		if err := postgres.InstallContextKey(ctx, dsn, k); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "tenant context key %s installed\n", k.ID())
		return nil
	default: // retire
		dsn, err := databaseURL(e, *dbURL)
		if err != nil {
			return err
		}
		found, err := postgres.RetireContextKey(ctx, dsn, *id)
		if err != nil {
			return err
		}
		if !found {
			return usagef("tenant-key retire: --id: no key %q is installed", *id)
		}
		fmt.Fprintf(e.stdout, "tenant context key %s retired\n", *id)
		return nil
	}
}
