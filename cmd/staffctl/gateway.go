package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/apperr"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
)

const gatewayUsage = `usage:
  staffctl gateway register   --org ID|SLUG --serial SERIAL [--name NAME] [--ttl 24h]
  staffctl gateway rotate-key --gateway ID [--org ID|SLUG] [--overlap 1h]
  staffctl gateway revoke     --gateway ID
`

func runGateway(ctx context.Context, e env, args []string) error {
	sub, args, err := subcommand(e, args, gatewayUsage, "register", "rotate-key", "revoke")
	if err != nil {
		return err
	}
	switch sub {
	case "rotate-key":
		return runGatewayRotateKey(ctx, e, args)
	case "revoke":
		return runGatewayRevoke(ctx, e, args)
	}
	fs, dbURL := newFlags(e, "gateway register", "gateway register --org ID|SLUG --serial SERIAL [--name NAME] [--ttl 24h] [--database-url URL]\n\n"+
		"Registers a gateway and prints a one-time provisioning token for its gateway.yml.")
	org := fs.String("org", "", "organisation id or slug (required)")
	serial := fs.String("serial", "", "the gateway's serial, unique in the organisation (required)")
	name := fs.String("name", "", "a human-friendly name, e.g. the site")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the provisioning token stays valid (1m to 720h)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *org == "" {
		return usagef("gateway register: --org is required")
	}
	if *serial == "" {
		return usagef("gateway register: --serial is required")
	}
	dsn, err := databaseURL(e, *dbURL)
	if err != nil {
		return err
	}
	return withAccounts(ctx, dsn, func(svc *accounts.Service) error {
		orgID, err := resolveOrg(ctx, svc, *org)
		if err != nil {
			return err
		}
		r, err := svc.RegisterGateway(ctx, adminActor(), orgID, *serial, *name, *ttl)
		if err != nil {
			return err
		}
		printRegistration(e, r)
		return nil
	})
}

func printRegistration(e env, r accounts.Registration) {
	fmt.Fprintf(e.stdout, "gateway %s registered (serial %s, organisation %d)\n", r.GatewayID, r.Serial, r.OrganizationID)
	fmt.Fprintf(e.stdout, "provisioning token (one-time, shown once, expires %s):\n  %s\n", r.ExpiresAt.Format(time.RFC3339), r.ProvisioningToken)
	fmt.Fprintf(e.stdout, "put it in gateway.yml:\n  organization:\n    id: %d\n    provisioning_token: %s\n", r.OrganizationID, r.ProvisioningToken)
}

// runGatewayRevoke revokes a gateway for good through the implementation
// the Dashboard API's revoke route calls (accounts.RevokeGateway).
func runGatewayRevoke(ctx context.Context, e env, args []string) error {
	fs, dbURL := newFlags(e, "gateway revoke", "gateway revoke --gateway ID [--database-url URL]\n\n"+
		"Revokes a gateway for good: its API key, a pending rotation's key and its provisioning token stop working at once,\n"+
		"its control socket is closed and its unfinished commands are cancelled.")
	gw := fs.String("gateway", "", "the gateway's id (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	id, err := uuid.Parse(*gw)
	if err != nil {
		return usagef("gateway revoke: --gateway: %q is not a gateway id", *gw)
	}
	dsn, err := databaseURL(e, *dbURL)
	if err != nil {
		return err
	}
	return withAccounts(ctx, dsn, func(svc *accounts.Service) error {
		r, err := svc.RevokeGateway(ctx, adminActor(), id)
		switch {
		case errors.Is(err, accounts.ErrNotFound):
			return &apperr.FieldError{Field: "gateway", Message: fmt.Sprintf("no gateway %s", id)}
		case errors.Is(err, accounts.ErrRevoked):
			return &apperr.FieldError{Field: "gateway", Message: fmt.Sprintf("gateway %s is revoked already", id)}
		case err != nil:
			return err
		}
		fmt.Fprintf(e.stdout, "gateway %s (%s) revoked; %d unfinished commands cancelled\n", r.GatewayID, r.Serial, r.CancelledCommands)
		return nil
	})
}
