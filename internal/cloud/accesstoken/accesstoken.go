// Package accesstoken issues and verifies the Dashboard API's short-lived
// access tokens (issue 14): JWTs signed with Ed25519 (EdDSA), each naming
// its signing key by id ("kid") so keys can be rotated without logging
// anyone out — a new key signs, the old one still verifies until the
// tokens it signed have expired, then it is dropped.
//
// A token carries who the caller is — user, organisation, role, department
// scope — and the refresh-token family (session) it was minted from, so a
// revoked session's tokens can be refused. The Dashboard API takes role,
// organisation and user from a verified token only, never from the request.
//
// Verification accepts EdDSA only (a token naming "none", an HMAC or any
// other algorithm is refused before any key is used), requires a known kid,
// the issuer and audience of this deployment, an expiry no later than the
// maximum lifetime after issue, and allows a small clock skew.
package accesstoken

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// MaxTTL is the longest an access token may live (issue 14: ≤ 15 min).
const MaxTTL = 15 * time.Minute

// DefaultTTL is the lifetime of a token when the config names none.
const DefaultTTL = 10 * time.Minute

// Leeway is the clock skew tolerated on expiry and issue time.
const Leeway = 30 * time.Second

// Claims is who a token speaks for.
type Claims struct {
	// UserID is the user's id (users.id).
	UserID int64
	// OrganizationID is the user's organisation; 0 for a platform ADMIN.
	OrganizationID int64
	// Role is the user's role (ADMIN, ORG_ADMIN, HR, DEPARTMENT_LEAD,
	// EMPLOYEE).
	Role string
	// DepartmentID scopes a DEPARTMENT_LEAD to a department and its
	// sub-departments (0: no department scope).
	DepartmentID int64
	// EmployeeID scopes an EMPLOYEE to their own record (0: none).
	EmployeeID int64
	// SessionID is the refresh-token family the token was minted from.
	SessionID string
	// IssuedAt and ExpiresAt bound the token's life.
	IssuedAt, ExpiresAt time.Time
}

// Key is one Ed25519 signing key and its id.
type Key struct {
	// ID is the key id written in the token header ("kid"): short,
	// printable, unique in the keyset.
	ID string
	// Private is the key; its public half verifies.
	Private ed25519.PrivateKey
}

// Config is what the issuer needs.
type Config struct {
	// Issuer and Audience are written into and required of every token
	// (e.g. the Dashboard API's public URL and "staffcontrol-dashboard").
	Issuer, Audience string
	// TTL is a token's lifetime (0: DefaultTTL; at most MaxTTL).
	TTL time.Duration
	// Keys: the first signs; all verify. Rotation: put the new key first,
	// keep the old one until MaxTTL has passed, then remove it.
	Keys []Key
}

// Issuer signs and verifies access tokens.
type Issuer struct {
	cfg    Config
	signer Key
	public map[string]ed25519.PublicKey
	now    func() time.Time
	parser *jwt.Parser
}

// New checks cfg and returns its Issuer; errors name the field.
func New(cfg Config) (*Issuer, error) {
	if cfg.Issuer == "" {
		return nil, apperr.Field("issuer", "is required")
	}
	if cfg.Audience == "" {
		return nil, apperr.Field("audience", "is required")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < time.Minute || cfg.TTL > MaxTTL {
		return nil, apperr.Field("ttl", "must be between 1m and %s", MaxTTL)
	}
	if len(cfg.Keys) == 0 {
		return nil, apperr.Field("keys", "at least one signing key is required")
	}
	pub := make(map[string]ed25519.PublicKey, len(cfg.Keys))
	for i, k := range cfg.Keys {
		field := fmt.Sprintf("keys[%d]", i)
		if !validKeyID(k.ID) {
			return nil, apperr.Field(field+".id", "must be 1–64 characters of [A-Za-z0-9._-]")
		}
		if _, dup := pub[k.ID]; dup {
			return nil, apperr.Field(field+".id", "%q is used by another key", k.ID)
		}
		if len(k.Private) != ed25519.PrivateKeySize {
			return nil, apperr.Field(field+".private", "must be an Ed25519 private key")
		}
		pub[k.ID] = k.Private.Public().(ed25519.PublicKey)
	}
	iss := &Issuer{cfg: cfg, signer: cfg.Keys[0], public: pub, now: time.Now}
	iss.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return iss.now() }),
		jwt.WithStrictDecoding(),
	)
	return iss, nil
}

func validKeyID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// registered is the JWT body: the registered claims plus ours.
type registered struct {
	jwt.RegisteredClaims
	Org    int64  `json:"org,omitempty"`
	Role   string `json:"role"`
	Dept   int64  `json:"dept,omitempty"`
	Emp    int64  `json:"emp,omitempty"`
	Family string `json:"sid"`
}

// Issue signs a token for c (its IssuedAt and ExpiresAt are set here).
func (i *Issuer) Issue(c Claims) (string, Claims, error) {
	if c.UserID <= 0 {
		return "", Claims{}, errors.New("accesstoken: issue: no user")
	}
	if c.Role == "" || c.SessionID == "" {
		return "", Claims{}, errors.New("accesstoken: issue: role and session are required")
	}
	now := i.now().UTC().Truncate(time.Second)
	c.IssuedAt, c.ExpiresAt = now, now.Add(i.cfg.TTL)
	body := registered{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.cfg.Issuer,
			Subject:   strconv.FormatInt(c.UserID, 10),
			Audience:  jwt.ClaimStrings{i.cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			NotBefore: jwt.NewNumericDate(c.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		},
		Org: c.OrganizationID, Role: c.Role, Dept: c.DepartmentID, Emp: c.EmployeeID, Family: c.SessionID,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, body)
	t.Header["kid"] = i.signer.ID
	s, err := t.SignedString(i.signer.Private)
	if err != nil {
		return "", Claims{}, fmt.Errorf("accesstoken: sign: %w", err)
	}
	return s, c, nil
}

// Verify checks a token and returns its claims. Every refusal is an
// apperr.Unauthenticated whose message says why without echoing the token.
func (i *Issuer) Verify(token string) (Claims, error) {
	if len(token) > 4096 {
		return Claims{}, refused("the access token is too long")
	}
	var body registered
	_, err := i.parser.ParseWithClaims(token, &body, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := i.public[kid]
		if !ok {
			return nil, errUnknownKey
		}
		return k, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, refused("the access token has expired")
	case errors.Is(err, errUnknownKey):
		return Claims{}, refused("the access token's signing key is not known (rotated out?)")
	default:
		return Claims{}, refused("the access token is not valid")
	}
	// The lifetime a token claims is bounded by what this issuer grants.
	iat, exp := body.IssuedAt.UTC(), body.ExpiresAt.UTC()
	if exp.Sub(iat) > MaxTTL {
		return Claims{}, refused("the access token claims a lifetime over the maximum")
	}
	uid, err := strconv.ParseInt(body.Subject, 10, 64)
	if err != nil || uid <= 0 || body.Role == "" || body.Family == "" || body.Org < 0 || body.Dept < 0 || body.Emp < 0 {
		return Claims{}, refused("the access token is not valid")
	}
	return Claims{UserID: uid, OrganizationID: body.Org, Role: body.Role, DepartmentID: body.Dept, EmployeeID: body.Emp,
		SessionID: body.Family, IssuedAt: iat, ExpiresAt: exp}, nil
}

var errUnknownKey = errors.New("unknown key id")

func refused(msg string) error {
	return &apperr.Error{Code: apperr.Unauthenticated, Message: msg}
}

// ParseKeys reads the keyset of a configuration value: comma-separated
// "id:seed" pairs where seed is the 32-byte Ed25519 seed in base64 (std or
// URL alphabet, padding optional); the first signs. The error names the
// position, never the key material.
func ParseKeys(s string) ([]Key, error) {
	var out []Key
	for n, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		id, seed, ok := strings.Cut(part, ":")
		if !ok || id == "" {
			return nil, fmt.Errorf("key %d: want id:base64-seed", n+1)
		}
		raw, err := decodeSeed(seed)
		if err != nil || len(raw) != ed25519.SeedSize {
			return nil, fmt.Errorf("key %d (%s): the seed must be %d bytes in base64", n+1, id, ed25519.SeedSize)
		}
		out = append(out, Key{ID: id, Private: ed25519.NewKeyFromSeed(raw)})
	}
	return out, nil
}

func decodeSeed(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// GenerateKey returns a new random signing key named id.
func GenerateKey(id string) (Key, error) {
	if !validKeyID(id) {
		return Key{}, apperr.Field("id", "must be 1–64 characters of [A-Za-z0-9._-]")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("accesstoken: generate key: %w", err)
	}
	return Key{ID: id, Private: priv}, nil
}

// FormatKey is the configuration form of k that ParseKeys reads
// ("id:base64url-seed"). It is a secret.
func FormatKey(k Key) string {
	return k.ID + ":" + base64.RawURLEncoding.EncodeToString(k.Private.Seed())
}
