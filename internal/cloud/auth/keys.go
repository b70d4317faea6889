package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth/authdb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// Key rotation. A gateway holds one API key at a time; during a rotation
// the cloud knows two, the current and a pending one, both as SHA-256 only
// (migration 00009). RotateKey issues the pending key to a gateway that
// presents its current key. The gateway saves it, then uses it: the first
// request made with the pending key promotes it inside Authenticate (the
// lookup function), which revokes the old key at once, closes sockets still
// authenticated with it (the gateway_revoked NOTIFY) and completes the
// rotate_api_key command the key was issued for. ConfirmKey is what the
// gateway calls with the new key to learn that this happened. A pending key
// the gateway never used is discarded by the first request made with the
// old key after the overlap window.

// ErrKeyConflict refuses a rotation step that does not fit the gateway's
// key state. The wrapped message says why.
var ErrKeyConflict = errors.New("key conflict")

// ErrCommandNotFound means no rotate_api_key command with that id belongs
// to the gateway (another organisation's command is invisible).
var ErrCommandNotFound = errors.New("rotate_api_key command not found")

// Bounds of the overlap window: how long at least the old key stays valid
// beside a pending key the gateway has not used yet.
const (
	DefaultKeyOverlap = time.Hour
	MinKeyOverlap     = time.Minute
	MaxKeyOverlap     = 7 * 24 * time.Hour
)

// KeyRotation is the outcome of RotateKey.
type KeyRotation struct {
	// Rotated means the command's rotation is complete already: the key
	// the request was made with is its result, and no new key is issued.
	Rotated bool
	// APIKey is the new pending key, shown once (empty when Rotated).
	APIKey string
	// KeyPrefix is the new key's prefix (the current key's when Rotated).
	KeyPrefix string
	// ExpiresAt ends the overlap window (zero when Rotated).
	ExpiresAt time.Time
}

// KeyConfirmation is the outcome of ConfirmKey.
type KeyConfirmation struct {
	KeyPrefix string
	RotatedAt time.Time
	// CommandID is the rotate_api_key command that asked for the key
	// (uuid.Nil when the rotation had none).
	CommandID uuid.UUID
}

// keyState is a gateway's key state, as key_state.sql reads it.
type keyState struct {
	current      bool // the presented key is the current key
	prefix       string
	keyCommandID *uuid.UUID
	rotatedAt    *time.Time
	pending      bool
}

func (g *Gateways) keyState(ctx context.Context, tx pgx.Tx, gw Gateway, presentedKey string) (keyState, error) {
	r, err := authdb.New(tx).KeyState(ctx, authdb.KeyStateParams{ID: gw.ID, PresentedHash: HashSecret(presentedKey)})
	s := keyState{current: r.Current, prefix: r.Prefix, keyCommandID: r.KeyCommandID, rotatedAt: r.KeyRotatedAt, pending: r.Pending}
	if errors.Is(err, pgx.ErrNoRows) {
		return keyState{}, ErrUnauthorized
	}
	if err != nil {
		return keyState{}, fmt.Errorf("auth: read key state: %w", err)
	}
	return s, nil
}

// RotateKey issues a new pending key to gw, which made the request with
// presentedKey (its current key). commandID is the rotate_api_key command
// being executed, or uuid.Nil. A pending key issued earlier is replaced. A
// re-run of a command whose rotation is complete (the gateway crashed
// before recording it) gets Rotated and no new key. overlap 0 means
// DefaultKeyOverlap.
func (g *Gateways) RotateKey(ctx context.Context, gw Gateway, presentedKey string, commandID uuid.UUID, overlap time.Duration) (KeyRotation, error) {
	if overlap == 0 {
		overlap = DefaultKeyOverlap
	}
	if overlap < MinKeyOverlap || overlap > MaxKeyOverlap {
		return KeyRotation{}, fmt.Errorf("auth: overlap %v is outside %v…%v", overlap, MinKeyOverlap, MaxKeyOverlap)
	}
	var out KeyRotation
	err := postgres.InTenant(ctx, g.db, postgres.Tenant{OrganizationID: gw.OrganizationID}, func(tx pgx.Tx) error {
		s, err := g.keyState(ctx, tx, gw, presentedKey)
		if err != nil {
			return err
		}
		if !s.current {
			return fmt.Errorf("%w: the key this request was made with is no longer the gateway's current key", ErrKeyConflict)
		}
		var cmd *uuid.UUID
		if commandID != uuid.Nil {
			if s.keyCommandID != nil && *s.keyCommandID == commandID {
				out = KeyRotation{Rotated: true, KeyPrefix: s.prefix}
				return nil
			}
			status, err := authdb.New(tx).RotateCommandStatus(ctx, authdb.RotateCommandStatusParams{ID: commandID, GatewayID: gw.ID})
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrCommandNotFound
			}
			if err != nil {
				return fmt.Errorf("auth: read rotate_api_key command: %w", err)
			}
			if status != "pending" && status != "delivered" {
				return fmt.Errorf("%w: command %s is %s", ErrKeyConflict, commandID, status)
			}
			cmd = &commandID
		}
		key, hash, err := NewSecret(PrefixAPIKey)
		if err != nil {
			return err
		}
		prefix := KeyPrefix(key)
		expires, err := authdb.New(tx).SetPending(ctx, authdb.SetPendingParams{ID: gw.ID, Hash: hash, Prefix: &prefix,
			Overlap: fmt.Sprintf("%d milliseconds", overlap.Milliseconds()), CommandID: cmd})
		if err != nil {
			return fmt.Errorf("auth: store pending key: %w", err)
		}
		if expires != nil {
			out.ExpiresAt = *expires
		}
		out.APIKey, out.KeyPrefix = key, prefix
		return nil
	})
	if err != nil {
		return KeyRotation{}, err
	}
	return out, nil
}

// ConfirmKey checks that presentedKey, with which gw made the request, is
// the product of a completed rotation: the current key, no other key
// pending. Authenticating the request promoted the key if it was pending.
func (g *Gateways) ConfirmKey(ctx context.Context, gw Gateway, presentedKey string) (KeyConfirmation, error) {
	var out KeyConfirmation
	err := postgres.InTenant(ctx, g.db, postgres.Tenant{OrganizationID: gw.OrganizationID}, func(tx pgx.Tx) error {
		s, err := g.keyState(ctx, tx, gw, presentedKey)
		if err != nil {
			return err
		}
		switch {
		case !s.current:
			return fmt.Errorf("%w: the key this request was made with is no longer the gateway's current key", ErrKeyConflict)
		case s.pending:
			return fmt.Errorf("%w: this is the old key; the new key is pending until the gateway uses it", ErrKeyConflict)
		case s.rotatedAt == nil:
			return fmt.Errorf("%w: this key was never rotated", ErrKeyConflict)
		}
		out = KeyConfirmation{KeyPrefix: s.prefix, RotatedAt: *s.rotatedAt}
		if s.keyCommandID != nil {
			out.CommandID = *s.keyCommandID
		}
		return nil
	})
	if err != nil {
		return KeyConfirmation{}, err
	}
	return out, nil
}

// KeyPrefix is the part of a key that may be shown and logged: its type
// prefix and four characters.
func KeyPrefix(key string) string {
	n := len(PrefixAPIKey) + 4
	if !strings.HasPrefix(key, PrefixAPIKey) || len(key) < n {
		return ""
	}
	return key[:n]
}
