package buffer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
)

// Agent credentials: the hashes of the credentials enrolled agents present
// on every collector request (see internal/edge/agentauth, which owns the
// credentials themselves and the cache in front of these queries).

// EnrolledAgent is an enrolled agent the cloud has not been told of yet.
type EnrolledAgent struct {
	AgentUID     string
	ComputerName string
	EnrolledAt   time.Time
}

// PutAgentCredential stores hash as uid's credential, replacing (and so
// revoking) any credential uid had; replaced reports whether it had one.
// It is durable when it returns.
func (b *Buffer) PutAgentCredential(ctx context.Context, uid, computerName string, hash []byte, at time.Time) (replaced bool, err error) {
	if len(hash) != 32 {
		return false, fmt.Errorf("buffer: credential hash must be 32 bytes, not %d", len(hash))
	}
	err = b.withTx(ctx, func(tx *sql.Tx) error {
		q := b.onTx(tx)
		n, err := q.CredentialExists(ctx, uid)
		if err != nil {
			return fmt.Errorf("buffer: look up agent credential: %w", err)
		}
		replaced = n > 0
		if err := q.CredentialPut(ctx, bufferdb.CredentialPutParams{AgentUid: uid, CredentialHash: hash,
			ComputerName: computerName, EnrolledAt: at.UnixMilli()}); err != nil {
			return fmt.Errorf("buffer: store agent credential: %w", err)
		}
		return nil
	})
	return replaced, err
}

// AgentByCredential returns the agent whose credential hashes to hash;
// ok is false when none does (unknown, replaced or revoked).
func (b *Buffer) AgentByCredential(ctx context.Context, hash []byte) (uid string, ok bool, err error) {
	uid, err = b.qs.CredentialLookup(ctx, hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("buffer: look up agent credential: %w", err)
	}
	return uid, true, nil
}

// DeleteAgentCredential revokes uid's credential; it reports whether there
// was one.
func (b *Buffer) DeleteAgentCredential(ctx context.Context, uid string) (bool, error) {
	var n int64
	err := b.withTx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = b.onTx(tx).CredentialDelete(ctx, uid)
		if err != nil {
			return fmt.Errorf("buffer: revoke agent credential: %w", err)
		}
		return nil
	})
	return n > 0, err
}

// AgentCredentialCount counts enrolled agents.
func (b *Buffer) AgentCredentialCount(ctx context.Context) (int64, error) {
	n, err := b.qs.CredentialCount(ctx)
	if err != nil {
		return 0, fmt.Errorf("buffer: count agent credentials: %w", err)
	}
	return n, nil
}

// UnreportedAgents returns up to limit enrolled agents the cloud has not
// been told of, oldest enrolment first.
func (b *Buffer) UnreportedAgents(ctx context.Context, limit int) ([]EnrolledAgent, error) {
	rows, err := b.qs.CredentialUnreported(ctx, int64(limit))
	if err != nil {
		return nil, fmt.Errorf("buffer: list unreported agents: %w", err)
	}
	var out []EnrolledAgent
	for _, r := range rows {
		out = append(out, EnrolledAgent{AgentUID: r.AgentUid, ComputerName: r.ComputerName,
			EnrolledAt: time.UnixMilli(r.EnrolledAt).UTC()})
	}
	return out, nil
}

// MarkAgentReported records that the cloud was told of a's enrolment (a
// re-enrolment since then stays unreported).
func (b *Buffer) MarkAgentReported(ctx context.Context, a EnrolledAgent, at time.Time) error {
	return b.withLazyTx(ctx, func(tx *sql.Tx) error {
		if err := b.onTx(tx).CredentialReported(ctx, bufferdb.CredentialReportedParams{ReportedAt: at.UnixMilli(),
			AgentUid: a.AgentUID, EnrolledAt: a.EnrolledAt.UnixMilli()}); err != nil {
			return fmt.Errorf("buffer: mark agent reported: %w", err)
		}
		return nil
	})
}

// State returns a value of the gateway's small key-value state ("" when
// unset).
func (b *Buffer) State(ctx context.Context, key string) (string, error) {
	v, err := b.qs.GetState(ctx, key)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("buffer: read state %s: %w", key, err)
	}
	return v, nil
}

// SetState durably stores a value of the gateway's key-value state.
func (b *Buffer) SetState(ctx context.Context, key, value string) error {
	return b.withTx(ctx, func(tx *sql.Tx) error {
		if err := b.onTx(tx).SetState(ctx, bufferdb.SetStateParams{Key: key, Value: value}); err != nil {
			return fmt.Errorf("buffer: store state %s: %w", key, err)
		}
		return nil
	})
}
