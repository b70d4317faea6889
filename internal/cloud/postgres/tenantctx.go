package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres/postgresdb"
)

// ContextTTL is how long a signed tenant context stays valid after it is
// set: the database refuses it once its expiry is before the transaction's
// start (now()). Longer than any transaction the services run; short
// enough that a context copied out of a log is soon useless.
const ContextTTL = 5 * time.Minute

// contextKeyData is the name under which Connect stores a pool's key in
// each connection's pgconn custom data.
const contextKeyData = "staffcontrol.tenant_context_key"

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ContextKey is the HMAC-SHA-256 key that signs tenant contexts. The
// database holds it in app.context_keys (owner-only, as HMAC pads) and
// verifies every context with it; the runtime roles cannot read it. The
// zero ContextKey signs nothing: InTenant refuses to run without a key.
type ContextKey struct {
	id     string
	secret string // bytes; a string keeps ContextKey comparable
}

// ParseContextKey parses the configuration form of a key,
// "<id>:<secret>", where id is 1–32 of [A-Za-z0-9_-] and secret is
// base64url (with or without padding) of 32 to 64 bytes.
func ParseContextKey(s string) (ContextKey, error) {
	id, enc, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || !keyIDPattern.MatchString(id) {
		return ContextKey{}, errors.New(`want "<key id>:<base64url secret>", key id 1-32 of A-Z a-z 0-9 _ -`)
	}
	secret, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(enc, "="))
	if err != nil {
		return ContextKey{}, errors.New("the secret is not base64url")
	}
	if len(secret) < 32 || len(secret) > 64 {
		return ContextKey{}, fmt.Errorf("the secret has %d bytes, want 32 to 64", len(secret))
	}
	return ContextKey{id: id, secret: string(secret)}, nil
}

// GenerateContextKey returns a new random 32-byte key named id.
func GenerateContextKey(id string) (ContextKey, error) {
	if !keyIDPattern.MatchString(id) {
		return ContextKey{}, fmt.Errorf("key id %q: want 1-32 of A-Z a-z 0-9 _ -", id)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return ContextKey{}, fmt.Errorf("generate tenant context key: %w", err)
	}
	return ContextKey{id: id, secret: string(secret)}, nil
}

// ID is the key's id, carried in every context it signs.
func (k ContextKey) ID() string { return k.id }

// IsZero reports whether k is the zero key.
func (k ContextKey) IsZero() bool { return len(k.secret) == 0 }

// String is the configuration form of the key (see ParseContextKey). It is
// a secret.
func (k ContextKey) String() string {
	return k.id + ":" + base64.RawURLEncoding.EncodeToString([]byte(k.secret))
}

// pads returns the HMAC inner and outer padded keys (RFC 2104) that the
// database stores, so that it verifies with sha256() alone.
func (k ContextKey) pads() (inner, outer []byte) {
	inner, outer = make([]byte, sha256.BlockSize), make([]byte, sha256.BlockSize)
	copy(inner, k.secret)
	copy(outer, k.secret)
	for i := range inner {
		inner[i] ^= 0x36
		outer[i] ^= 0x5c
	}
	return inner, outer
}

// keyFromPads recovers a key from its stored pads.
func keyFromPads(id string, inner []byte) ContextKey {
	secret := make([]byte, len(inner))
	for i := range inner {
		secret[i] = inner[i] ^ 0x36
	}
	// Keys are at most 64 bytes and padded with zeros; trailing zero bytes
	// of the secret itself would be ambiguous, but HMAC pads them anyway,
	// so the recovered key signs identically.
	return ContextKey{id: id, secret: string(secret)}
}

var scopePattern = regexp.MustCompile(`^((department|employee):[1-9][0-9]{0,17})?$`)

// Sign returns the value of app.tenant for t, valid until exp: the fields
// v1|key id|organisation|role|user|scope|actor (hex)|expiry (unix s),
// then the hex HMAC-SHA-256 of those.
func (k ContextKey) Sign(t Tenant, exp time.Time) (string, error) {
	if k.IsZero() {
		return "", errors.New("postgres: no tenant context key")
	}
	if t.Role != "" {
		if _, err := ParseAppRole(string(t.Role)); err != nil {
			return "", fmt.Errorf("postgres: tenant context: %w", err)
		}
	}
	if !scopePattern.MatchString(t.Scope) {
		return "", fmt.Errorf("postgres: tenant context: scope %q, want department:<id>, employee:<id> or empty", t.Scope)
	}
	if t.OrganizationID < 0 || t.UserID < 0 {
		return "", errors.New("postgres: tenant context: negative id")
	}
	actor := t.Actor
	if len(actor) > 255 {
		actor = actor[:255]
	}
	var b strings.Builder
	b.WriteString("v1|")
	b.WriteString(k.id)
	b.WriteByte('|')
	if t.OrganizationID != 0 {
		b.WriteString(strconv.FormatInt(t.OrganizationID, 10))
	}
	b.WriteByte('|')
	b.WriteString(string(t.Role))
	b.WriteByte('|')
	if t.UserID != 0 {
		b.WriteString(strconv.FormatInt(t.UserID, 10))
	}
	b.WriteByte('|')
	b.WriteString(t.Scope)
	b.WriteByte('|')
	b.WriteString(hex.EncodeToString([]byte(actor)))
	b.WriteByte('|')
	b.WriteString(strconv.FormatInt(exp.Unix(), 10))
	mac := hmac.New(sha256.New, []byte(k.secret))
	mac.Write([]byte(b.String()))
	b.WriteByte('|')
	b.WriteString(hex.EncodeToString(mac.Sum(nil)))
	return b.String(), nil
}

// AttachContextKey makes conn sign the tenant contexts InTenant sets on it
// with key. Connect does this for every connection of its pool.
func AttachContextKey(conn *pgx.Conn, key ContextKey) {
	conn.PgConn().CustomData()[contextKeyData] = key
}

// SetTenant signs t with the key attached to tx's connection and sets it
// transaction-locally as app.tenant. A zero Tenant sets no context (every
// tenant row is then invisible). InTenant calls it first thing; use it
// directly only for a transaction InTenant cannot wrap.
func SetTenant(ctx context.Context, tx pgx.Tx, t Tenant) error {
	value := ""
	if t != (Tenant{}) {
		key, _ := tx.Conn().PgConn().CustomData()[contextKeyData].(ContextKey)
		if key.IsZero() {
			return errors.New("postgres: set tenant context: this connection has no tenant context key (connect with postgres.Connect and the service's TENANT_CONTEXT_KEY)")
		}
		var err error
		if value, err = key.Sign(t, time.Now().Add(ContextTTL)); err != nil {
			return err
		}
	}
	if err := postgresdb.New(tx).SetTenant(ctx, value); err != nil {
		return fmt.Errorf("postgres: set tenant context: %w", err)
	}
	return nil
}

// InstallContextKey stores key in the database at dsn (an administrator's
// URL; it acts as the owner role), replacing a key of the same id. Other
// keys stay valid, so a rotation installs the new key, moves the services
// to it, then retires the old one (RetireContextKey).
func InstallContextKey(ctx context.Context, dsn string, key ContextKey) error {
	if key.IsZero() {
		return errors.New("postgres: install tenant context key: no key")
	}
	inner, outer := key.pads()
	return asOwner(ctx, dsn, func(conn *pgx.Conn) error {
		err := postgresdb.New(conn).InstallContextKey(ctx, postgresdb.InstallContextKeyParams{ID: key.id, InnerPad: inner, OuterPad: outer})
		if err != nil {
			return fmt.Errorf("postgres: install tenant context key %s: %w", key.id, err)
		}
		return nil
	})
}

// RetireContextKey removes the key named id from the database at dsn:
// contexts signed with it match nothing from then on. It reports whether
// such a key existed.
func RetireContextKey(ctx context.Context, dsn, id string) (bool, error) {
	var n int64
	err := asOwner(ctx, dsn, func(conn *pgx.Conn) error {
		var err error
		n, err = postgresdb.New(conn).RetireContextKey(ctx, id)
		if err != nil {
			return fmt.Errorf("postgres: retire tenant context key %s: %w", id, err)
		}
		return nil
	})
	return n > 0, err
}

// CurrentContextKey reads the most recently installed key from the
// database at dsn (an administrator's URL, acting as the owner): how
// staffctl, which holds the administrator's credentials anyway, signs its
// contexts without a key of its own.
func CurrentContextKey(ctx context.Context, dsn string) (ContextKey, error) {
	var key ContextKey
	err := asOwner(ctx, dsn, func(conn *pgx.Conn) error {
		r, err := postgresdb.New(conn).CurrentContextKey(ctx)
		id, inner := r.ID, r.InnerPad
		if errors.Is(err, pgx.ErrNoRows) {
			return errors.New("postgres: no tenant context key is installed (staffctl migrate up with TENANT_CONTEXT_KEY, or staffctl tenant-key install)")
		}
		if err != nil {
			return fmt.Errorf("postgres: read tenant context key: %w", err)
		}
		key = keyFromPads(id, inner)
		return nil
	})
	return key, err
}

func asOwner(ctx context.Context, dsn string, fn func(*pgx.Conn) error) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("postgres: parse database URL: %w", err)
	}
	cfg.RuntimeParams["role"] = RoleOwner
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: connect to %s: %w", redact(dsn), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}
