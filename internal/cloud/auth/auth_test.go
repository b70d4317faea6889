package auth

import (
	"strings"
	"testing"
)

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
