package auth

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// phc builds an argon2id hash of password with the given parameters (as
// an older release, or a tampered row, might have stored it).
func phc(password string, mem, iters uint32, threads uint8, saltLen, keyLen int) string {
	salt := []byte(strings.Repeat("s", saltLen))
	key := argon2.IDKey([]byte(password), salt, iters, mem, threads, uint32(keyLen))
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, mem, iters, threads,
		enc.EncodeToString(salt), enc.EncodeToString(key))
}

// TestOlderHashesVerifyAndAreUpgraded: a hash with other (older, weaker)
// parameters still verifies and NeedsRehash says to replace it; a current
// one does not need it.
func TestOlderHashesVerifyAndAreUpgraded(t *testing.T) {
	t.Parallel()
	current, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		hash   string
		rehash bool
	}{
		{"current", current, false},
		{"less memory", phc("correct horse battery", 4096, 3, 1, 16, 32), true},
		{"more passes", phc("correct horse battery", argonMemoryKiB, 3, 1, 16, 32), true},
		{"two lanes", phc("correct horse battery", argonMemoryKiB, argonTime, 2, 16, 32), true},
		{"short salt", phc("correct horse battery", argonMemoryKiB, argonTime, 1, 8, 32), true},
		{"short key", phc("correct horse battery", argonMemoryKiB, argonTime, 1, 16, 16), true},
		{"not argon2id", "$2a$10$notargon", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NeedsRehash(tc.hash); got != tc.rehash {
				t.Fatalf("NeedsRehash = %v, want %v", got, tc.rehash)
			}
			if strings.HasPrefix(tc.hash, "$argon2id") {
				ok, err := VerifyPassword(tc.hash, "correct horse battery")
				if err != nil || !ok {
					t.Fatalf("VerifyPassword = %v, %v", ok, err)
				}
			}
		})
	}
}

// TestVerifyPasswordRefusesOutOfBoundsParameters: a stored hash cannot make
// a login allocate gigabytes or spin (checked before any hashing).
func TestVerifyPasswordRefusesOutOfBoundsParameters(t *testing.T) {
	t.Parallel()
	salt, key := base64.RawStdEncoding.EncodeToString(make([]byte, 16)), base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	for _, params := range []string{
		"m=4194304,t=2,p=1", // 4 GiB
		"m=19456,t=1000,p=1",
		"m=19456,t=0,p=1",
		"m=19456,t=2,p=0",
		"m=19456,t=2,p=255",
		"m=1,t=2,p=1",
	} {
		hash := fmt.Sprintf("$argon2id$v=19$%s$%s$%s", params, salt, key)
		if ok, err := VerifyPassword(hash, "x"); err == nil || ok {
			t.Errorf("%s: VerifyPassword = %v, %v; want an error", params, ok, err)
		}
	}
	for _, h := range []string{
		"$argon2id$v=19$m=19456,t=2,p=1$" + base64.RawStdEncoding.EncodeToString(make([]byte, 4)) + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + base64.RawStdEncoding.EncodeToString(make([]byte, 4096)),
	} {
		if _, err := VerifyPassword(h, "x"); err == nil {
			t.Errorf("%s…: accepted", h[:40])
		}
	}
}

func TestPasswordHashRoundTrip(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$") {
		t.Fatalf("hash %q is not a PHC argon2id string", h)
	}
	tests := []struct {
		password string
		want     bool
	}{
		{"correct horse battery", true},
		{"correct horse batterY", false},
		{"", false},
	}
	for _, tt := range tests {
		got, err := VerifyPassword(h, tt.password)
		if err != nil || got != tt.want {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v", tt.password, got, err, tt.want)
		}
	}
	if _, err := VerifyPassword("$2a$10$notargon", "x"); err == nil {
		t.Error("a non-argon2 hash verified without error")
	}
}

func TestHashPasswordRejectsBadLengths(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"short", strings.Repeat("x", 1025)} {
		if _, err := HashPassword(pw); err == nil {
			t.Errorf("HashPassword(len %d) succeeded", len(pw))
		}
	}
}

func TestNewSecretIsUniqueAndHashed(t *testing.T) {
	t.Parallel()
	a, ha, err := NewSecret(PrefixAPIKey)
	if err != nil {
		t.Fatal(err)
	}
	b, hb, _ := NewSecret(PrefixAPIKey)
	if a == b || string(ha) == string(hb) {
		t.Fatal("two secrets are equal")
	}
	if !strings.HasPrefix(a, PrefixAPIKey) || len(a) != len(PrefixAPIKey)+43 {
		t.Fatalf("secret %q has the wrong shape", a)
	}
	if string(HashSecret(a)) != string(ha) || len(ha) != 32 {
		t.Fatal("HashSecret does not match the hash returned with the secret")
	}
}

// FuzzNeedsRehash: any stored string is parsed without a panic, and one
// that parses is within the bounds VerifyPassword enforces.
func FuzzNeedsRehash(f *testing.F) {
	f.Add(phc("correct horse battery", 4096, 1, 1, 16, 32))
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Add("$2a$10$notargon")
	f.Fuzz(func(t *testing.T, hash string) {
		p, err := parseHash(hash)
		if err != nil {
			if !NeedsRehash(hash) {
				t.Fatal("an unreadable hash does not need a rehash")
			}
			return
		}
		if p.mem > maxArgonMemoryKiB || p.iters > maxArgonTime || p.threads > maxArgonThreads || len(p.key) > 64 {
			t.Fatalf("out of bounds accepted: %+v", p)
		}
	})
}
