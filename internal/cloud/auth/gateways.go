package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth/authdb"
)

// ErrUnauthorized means a credential is unknown, revoked, expired or spent.
// Callers answer 401 without saying which.
var ErrUnauthorized = errors.New("unauthorized")

// Gateway is an authenticated gateway: the organisation every request it
// makes acts for comes from here, never from a payload.
type Gateway struct {
	ID             uuid.UUID
	OrganizationID int64
	Status         string
}

// Gateways authenticates and provisions gateways against PostgreSQL, as the
// ingest role, through the two SECURITY DEFINER functions that may look
// across organisations.
type Gateways struct {
	db *pgxpool.Pool
}

// NewGateways returns a Gateways using db.
func NewGateways(db *pgxpool.Pool) *Gateways { return &Gateways{db: db} }

// Authenticate looks a gateway up by its API key. The key is hashed and the
// hash looked up by index, so no comparison ever runs over key material and
// the time taken does not depend on how much of a guess was right.
func (g *Gateways) Authenticate(ctx context.Context, apiKey string) (Gateway, error) {
	if !strings.HasPrefix(apiKey, PrefixAPIKey) || len(apiKey) > 128 {
		return Gateway{}, ErrUnauthorized
	}
	r, err := authdb.New(g.db).GatewayByAPIKeyHash(ctx, HashSecret(apiKey))
	gw := Gateway(r)
	if errors.Is(err, pgx.ErrNoRows) {
		return Gateway{}, ErrUnauthorized
	}
	if err != nil {
		return Gateway{}, fmt.Errorf("auth: look up API key: %w", err)
	}
	if gw.Status == "revoked" {
		return Gateway{}, ErrUnauthorized
	}
	return gw, nil
}

// Provision exchanges a one-time provisioning token for a new API key. It
// returns the gateway and the key, which is shown to the gateway once and
// stored only as a hash.
func (g *Gateways) Provision(ctx context.Context, orgID int64, serial, token string) (Gateway, string, error) {
	if orgID <= 0 || serial == "" || !strings.HasPrefix(token, PrefixProvisioningToken) || len(token) > 128 {
		return Gateway{}, "", ErrUnauthorized
	}
	key, keyHash, err := NewSecret(PrefixAPIKey)
	if err != nil {
		return Gateway{}, "", err
	}
	id, err := authdb.New(g.db).Provision(ctx, authdb.ProvisionParams{OrganizationID: orgID, Serial: serial,
		TokenHash: HashSecret(token), KeyHash: keyHash, KeyPrefix: key[:len(PrefixAPIKey)+4]})
	if err != nil {
		return Gateway{}, "", fmt.Errorf("auth: provision: %w", err)
	}
	if id == uuid.Nil {
		return Gateway{}, "", ErrUnauthorized
	}
	return Gateway{ID: id, OrganizationID: orgID, Status: "offline"}, key, nil
}
