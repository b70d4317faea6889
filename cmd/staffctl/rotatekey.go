package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// runGatewayRotateKey queues a rotate_api_key command. The command holds
// no key: the gateway asks the Agent API for its new key when it runs it.
func runGatewayRotateKey(ctx context.Context, e env, args []string) error {
	fs, dbURL := newFlags(e, "gateway rotate-key", "gateway rotate-key --gateway ID [--org ID|SLUG] [--overlap 1h] [--database-url URL]\n\n"+
		"Queues a rotate_api_key command. The gateway fetches a new API key with its current one, saves it and confirms it;\n"+
		"the old key stops working at the new key's first use. If the gateway never uses the new key, the old one stays\n"+
		"valid and the new one is discarded after the overlap.")
	gw := fs.String("gateway", "", "gateway id (required)")
	org := fs.String("org", "", "organisation id or slug the gateway must belong to (optional check)")
	overlap := fs.Duration("overlap", time.Duration(protocol.DefaultKeyOverlapSeconds)*time.Second, "how long the old key stays valid at least if the new one is not used (1m to 168h)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the command waits for the gateway to come online")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *gw == "" {
		return usagef("gateway rotate-key: --gateway is required")
	}
	id, err := uuid.Parse(*gw)
	if err != nil {
		return usagef("gateway rotate-key: --gateway: %q is not a gateway id", *gw)
	}
	lo, hi := time.Duration(protocol.MinKeyOverlapSeconds)*time.Second, time.Duration(protocol.MaxKeyOverlapSeconds)*time.Second
	if *overlap < lo || *overlap > hi || *overlap%time.Second != 0 {
		return usagef("gateway rotate-key: --overlap must be whole seconds between %v and %v", lo, hi)
	}
	dsn, err := databaseURL(e, *dbURL)
	if err != nil {
		return err
	}
	pool, err := connectAdmin(ctx, dsn, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	tenant := adminActor().Tenant
	if *org != "" {
		orgID, err := resolveOrg(ctx, accounts.New(pool, time.Now), *org)
		if err != nil {
			return err
		}
		tenant.OrganizationID = orgID
		belongs, err := accounts.New(pool, time.Now).GatewayInOrganization(ctx, tenant, orgID, id)
		if err != nil {
			return err
		}
		if !belongs {
			return &apperr.FieldError{Field: "gateway", Message: fmt.Sprintf("no gateway %s in organisation %d", id, orgID)}
		}
	}
	q, err := commandQueue(pool)
	if err != nil {
		return err
	}
	// The same command the Dashboard API's rotate-key route queues.
	cmd, err := commandqueue.RotateKey(id, *overlap, *ttl, "staffctl")
	if err != nil {
		return usagef("gateway rotate-key: --overlap: %v", err)
	}
	c, err := q.Enqueue(ctx, tenant, cmd)
	if errors.Is(err, commandqueue.ErrNotFound) {
		return &apperr.FieldError{Field: "gateway", Message: fmt.Sprintf("no gateway %s (or it is revoked)", id)}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "command %s queued: gateway %s will rotate its API key (overlap %v, command expires %s)\n",
		c.ID, id, *overlap, c.ExpiresAt.Format(time.RFC3339))
	fmt.Fprintf(e.stdout, "follow it with: staffctl command list --org <org> --gateway %s (the result shows the new key's prefix)\n", id)
	return nil
}
