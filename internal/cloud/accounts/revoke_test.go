package accounts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// TestRevokeGateway: a revoked gateway's key and provisioning token stop
// working, its unfinished commands are cancelled, the revocation is
// audited; revoking again is ErrRevoked; another organisation's gateway is
// ErrNotFound to an organisation's administrator.
func TestRevokeGateway(t *testing.T) {
	t.Parallel()
	svc, adminURL := newService(t)
	ctx := context.Background()
	a, err := svc.CreateOrganization(ctx, admin, "Alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.CreateOrganization(ctx, admin, "Beta", "")
	if err != nil {
		t.Fatal(err)
	}
	regA, err := svc.RegisterGateway(ctx, admin, a.ID, "GW-A", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	regB, err := svc.RegisterGateway(ctx, admin, b.ID, "GW-B", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, status)
		VALUES ($1, $2, 'restart_agent', '{}', 'pending'), ($1, $2, 'restart_agent', '{}', 'delivered'), ($1, $2, 'restart_agent', '{}', 'completed')`,
		a.ID, regA.GatewayID); err != nil {
		t.Fatal(err)
	}

	alphaAdmin := accounts.Actor{Name: "alpha-admin", Tenant: postgres.Tenant{OrganizationID: a.ID, Role: postgres.AppOrgAdmin}}
	for _, id := range []uuid.UUID{regB.GatewayID, uuid.New()} {
		if _, err := svc.RevokeGateway(ctx, alphaAdmin, id); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("revoke %s as alpha's admin: %v, want ErrNotFound", id, err)
		}
	}
	r, err := svc.RevokeGateway(ctx, alphaAdmin, regA.GatewayID)
	if err != nil {
		t.Fatal(err)
	}
	if r.OrganizationID != a.ID || r.Serial != "GW-A" || r.CancelledCommands != 2 {
		t.Fatalf("revocation: %+v", r)
	}
	if _, err := svc.RevokeGateway(ctx, alphaAdmin, regA.GatewayID); !errors.Is(err, accounts.ErrRevoked) {
		t.Fatalf("revoke again: %v, want ErrRevoked", err)
	}
	var status string
	var cancelled, audits int
	if err := conn.QueryRow(ctx, `SELECT status FROM gateway_instances WHERE id = $1 AND revoked_at IS NOT NULL`, regA.GatewayID).Scan(&status); err != nil || status != "revoked" {
		t.Fatalf("status %q, %v", status, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM gateway_commands WHERE gateway_id = $1 AND status = 'cancelled'`, regA.GatewayID).Scan(&cancelled); err != nil || cancelled != 2 {
		t.Fatalf("%d cancelled, %v", cancelled, err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'revoke' AND resource_id = $1 AND organization_id = $2`,
		regA.GatewayID.String(), a.ID).Scan(&audits); err != nil || audits != 1 {
		t.Fatalf("%d audit rows, %v", audits, err)
	}
	// The provisioning exchange refuses a revoked gateway's token.
	var gw *uuid.UUID
	if err := conn.QueryRow(ctx, `SELECT gateway_provision($1, 'GW-A', $2, sha256('k'), 'k')`,
		a.ID, auth.HashSecret(regA.ProvisioningToken)).Scan(&gw); err != nil || gw != nil {
		t.Fatalf("provisioning a revoked gateway: %v, %v", gw, err)
	}
}
