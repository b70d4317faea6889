// Package enrolment is the cloud's side of agent enrolment (issue 11): each
// organisation's agent enrolment secret (created and rotated here, shown
// once, stored only as its SHA-256), the verifier gateways fetch to check
// enrolments, the record of agents gateways report enrolled, and the
// revocation of an agent (a revoke_agent command to every gateway of its
// organisation, which then drops the agent's credential).
package enrolment

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/enrolment/enrolmentdb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// ErrNotFound: no such organisation (or none visible to the tenant), or no
// gateway to send a revocation to.
var ErrNotFound = errors.New("enrolment: not found")

// Service manages enrolment secrets and agent records.
type Service struct {
	db *pgxpool.Pool
}

// New returns a Service over db (the owner or dashboard role for secrets
// and revocations, the ingest role for verifiers and agent records).
func New(db *pgxpool.Pool) *Service { return &Service{db: db} }

// NewSecret returns a fresh enrolment secret: the prefix and 256 random
// bits, base64url.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return protocol.EnrolmentSecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Rotate creates or replaces the organisation's enrolment secret and
// returns it (the only time it is shown). Gateways pick the new verifier
// up within collector.enrolment_refresh, or at once on the first enrolment
// with the new secret; the old secret stops enrolling agents, and agents
// already enrolled keep their credentials.
func (s *Service) Rotate(ctx context.Context, t postgres.Tenant, orgID int64) (string, time.Time, error) {
	secret := NewSecret()
	h := sha256.Sum256([]byte(secret))
	var at time.Time
	err := postgres.InTenant(ctx, s.db, t, func(tx pgx.Tx) error {
		r, err := enrolmentdb.New(tx).RotateSecret(ctx, enrolmentdb.RotateSecretParams{OrganizationID: orgID, Hash: h[:]})
		if r != nil {
			at = *r
		}
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, ErrNotFound
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("enrolment: rotate secret of organisation %d: %w", orgID, err)
	}
	return secret, at, nil
}

// Verifier returns the organisation's verifier ("" when it has no
// secret): "sha256:" and the hex SHA-256 of the secret.
func (s *Service) Verifier(ctx context.Context, orgID int64) (protocol.EnrolmentVerifier, error) {
	out := protocol.EnrolmentVerifier{OrganizationID: orgID}
	var hash []byte
	err := postgres.InTenant(ctx, s.db, postgres.Tenant{OrganizationID: orgID}, func(tx pgx.Tx) error {
		r, err := enrolmentdb.New(tx).Verifier(ctx, orgID)
		hash, out.RotatedAt = r.EnrolmentSecretHash, r.EnrolmentSecretRotatedAt
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return out, ErrNotFound
	}
	if err != nil {
		return out, fmt.Errorf("enrolment: read verifier of organisation %d: %w", orgID, err)
	}
	if len(hash) > 0 {
		out.Verifier = protocol.VerifierSHA256 + hex.EncodeToString(hash)
	}
	return out, nil
}

// RecordAgent records an agent a gateway reports enrolled.
func (s *Service) RecordAgent(ctx context.Context, orgID int64, gatewayID uuid.UUID, a protocol.AgentEnrolled) error {
	err := postgres.InTenant(ctx, s.db, postgres.Tenant{OrganizationID: orgID}, func(tx pgx.Tx) error {
		return enrolmentdb.New(tx).RecordAgent(ctx, enrolmentdb.RecordAgentParams{OrganizationID: orgID, GatewayID: gatewayID,
			AgentUid: a.AgentUID, ComputerName: a.ComputerName, EnrolledAt: &a.EnrolledAt})
	})
	if err != nil {
		return fmt.Errorf("enrolment: record agent %s: %w", a.AgentUID, err)
	}
	return nil
}

// RevokeAgent marks the agent revoked and queues a revoke_agent command for
// every gateway of the tenant's organisation (t.OrganizationID, required;
// named in every statement, since an ADMIN context sees all organisations) (an agent may enrol at any of
// them), in one transaction; it returns the commands. ErrNotFound when the
// organisation has no gateway.
func (s *Service) RevokeAgent(ctx context.Context, t postgres.Tenant, q *commandqueue.Queue, agentUID, createdBy string) ([]commandqueue.Command, error) {
	if err := protocol.CheckText("agent_uid", agentUID, true, protocol.MaxShortField); err != nil {
		return nil, &apperr.FieldError{Field: "agent_uid", Message: err.Error()}
	}
	if t.OrganizationID <= 0 {
		return nil, &apperr.FieldError{Field: "organization_id", Message: "is required: an agent is revoked in one organisation"}
	}
	payload, _ := json.Marshal(protocol.RevokeAgentPayload{AgentUID: agentUID})
	var out []commandqueue.Command
	err := postgres.InTenant(ctx, s.db, t, func(tx pgx.Tx) error {
		db := enrolmentdb.New(tx)
		ids, err := db.ActiveGateways(ctx, t.OrganizationID)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return ErrNotFound
		}
		if err := db.RevokeAgent(ctx, enrolmentdb.RevokeAgentParams{OrganizationID: t.OrganizationID, AgentUid: agentUID}); err != nil {
			return err
		}
		for _, id := range ids {
			c, err := q.EnqueueTx(ctx, tx, commandqueue.NewCommand{GatewayID: id, Type: protocol.CommandRevokeAgent, Payload: payload,
				Priority: 10, CreatedBy: createdBy})
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("enrolment: revoke agent %s: %w", agentUID, err)
	}
	return out, nil
}
