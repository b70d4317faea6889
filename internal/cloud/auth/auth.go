// Package auth provides the cloud's credentials: argon2id password hashes
// for dashboard users, and high-entropy secrets (gateway API keys,
// provisioning tokens) that are shown once and stored only as SHA-256.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: OWASP's recommended minimum (19 MiB, 2 passes, 1
// lane), which keeps a login under ~50 ms on one core.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	saltLen        = 16
)

// Secret prefixes say what a secret is when it turns up in a log or a
// support ticket.
const (
	PrefixAPIKey            = "scgw_"
	PrefixProvisioningToken = "scpt_"
)

// HashPassword returns an argon2id hash in the PHC string format.
func HashPassword(password string) (string, error) {
	if len(password) < 12 {
		return "", errors.New("password must be at least 12 characters")
	}
	if len(password) > 1024 {
		return "", errors.New("password must be at most 1024 characters")
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// argonParams are a stored hash's parameters.
type argonParams struct {
	mem, iters uint32
	threads    uint8
	salt, key  []byte
}

// Bounds on a stored hash's parameters: a hash outside them is refused
// before any work, so a row written by something else (or tampered with)
// cannot make one login allocate gigabytes or spin for minutes.
const (
	maxArgonMemoryKiB = 256 * 1024
	maxArgonTime      = 10
	maxArgonThreads   = 16
)

// parseHash reads an argon2id hash in the PHC string format.
func parseHash(hash string) (argonParams, error) {
	var p argonParams
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, errors.New("auth: not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, errors.New("auth: unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.mem, &p.iters, &p.threads); err != nil {
		return p, errors.New("auth: bad argon2 parameters")
	}
	if p.mem < 8*uint32(p.threads) || p.mem > maxArgonMemoryKiB || p.iters < 1 || p.iters > maxArgonTime ||
		p.threads < 1 || p.threads > maxArgonThreads {
		return p, errors.New("auth: argon2 parameters out of bounds")
	}
	enc := base64.RawStdEncoding
	var err error
	if p.salt, err = enc.DecodeString(parts[4]); err != nil || len(p.salt) < 8 || len(p.salt) > 64 {
		return p, errors.New("auth: bad salt")
	}
	if p.key, err = enc.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return p, errors.New("auth: bad key")
	}
	return p, nil
}

// VerifyPassword reports whether password matches an argon2id hash (made
// by HashPassword now or with other parameters before), comparing in
// constant time. A hash whose parameters are out of bounds is an error.
func VerifyPassword(hash, password string) (bool, error) {
	p, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), p.salt, p.iters, p.mem, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(got, p.key) == 1, nil
}

// NeedsRehash reports whether a hash that just verified should be replaced
// by HashPassword's: its parameters, salt or key length differ from the
// current ones (older or weaker settings are upgraded at the next
// successful sign-in, issue 14).
func NeedsRehash(hash string) bool {
	p, err := parseHash(hash)
	if err != nil {
		return true
	}
	return p.mem != argonMemoryKiB || p.iters != argonTime || p.threads != argonThreads ||
		len(p.salt) != saltLen || len(p.key) != argonKeyLen
}

// NewSecret returns a new random secret (256 bits, base64url, with prefix)
// and the hash to store.
func NewSecret(prefix string) (secret string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("auth: random secret: %w", err)
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret), nil
}

// HashSecret is the stored form of a secret: SHA-256 of its text. A secret
// has 256 bits of entropy, so a fast hash is enough; looking it up by hash
// means no comparison ever runs over the secret itself.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// NewPassword returns a random password for a user created without one.
func NewPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: random password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
