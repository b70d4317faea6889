package accesstoken

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

func key(t testing.TB, id string, seed byte) Key {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	return Key{ID: id, Private: ed25519.NewKeyFromSeed(s)}
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func issuer(t testing.TB, c *clock, keys ...Key) *Issuer {
	t.Helper()
	i, err := New(Config{Issuer: "https://dash.example", Audience: "staffcontrol-dashboard", Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	i.now = c.now
	return i
}

var lead = Claims{UserID: 42, OrganizationID: 7, Role: "DEPARTMENT_LEAD", DepartmentID: 3, SessionID: "fam-1"}

func TestIssueAndVerify(t *testing.T) {
	c := &clock{time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	i := issuer(t, c, key(t, "k1", 1))
	tok, issued, err := i.Issue(lead)
	if err != nil {
		t.Fatal(err)
	}
	if got := issued.ExpiresAt.Sub(issued.IssuedAt); got != DefaultTTL {
		t.Fatalf("lifetime %s, want %s", got, DefaultTTL)
	}
	got, err := i.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got != issued {
		t.Fatalf("verified %+v, issued %+v", got, issued)
	}
	// A platform ADMIN has no organisation.
	admin := Claims{UserID: 1, Role: "ADMIN", SessionID: "fam-2"}
	tok, _, err = i.Issue(admin)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := i.Verify(tok); err != nil || got.OrganizationID != 0 || got.Role != "ADMIN" {
		t.Fatalf("admin: %+v %v", got, err)
	}
	// An EMPLOYEE carries their employee id.
	emp := Claims{UserID: 9, OrganizationID: 7, Role: "EMPLOYEE", EmployeeID: 55, SessionID: "fam-3"}
	tok, issued, err = i.Issue(emp)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := i.Verify(tok); err != nil || got != issued || got.EmployeeID != 55 {
		t.Fatalf("employee: %+v %v", got, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	c := &clock{time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	k1 := key(t, "k1", 1)
	i := issuer(t, c, k1)
	good, _, err := i.Issue(lead)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	header := func(h map[string]any) string {
		b, _ := json.Marshal(h)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	body := func(mut func(map[string]any)) string {
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		mut(m)
		b, _ := json.Marshal(m)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	sign := func(k Key, h, b string) string {
		return h + "." + b + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k.Private, []byte(h+"."+b)))
	}
	eddsa := header(map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": "k1"})
	pub := k1.Private.Public().(ed25519.PublicKey)
	hs := header(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"})
	mac := hmac.New(sha256.New, pub)
	mac.Write([]byte(hs + "." + parts[1]))
	hmacWithPublicKey := hs + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	tests := []struct {
		name, token, want string
	}{
		{"empty", "", "not valid"},
		{"garbage", "a.b.c", "not valid"},
		{"too long", strings.Repeat("a", 5000), "too long"},
		{"alg none", header(map[string]any{"alg": "none", "kid": "k1"}) + "." + parts[1] + ".", "not valid"},
		{"HMAC keyed with the public key (algorithm confusion)", hmacWithPublicKey, "not valid"},
		{"payload changed, signature kept", parts[0] + "." + body(func(m map[string]any) { m["role"] = "ADMIN" }) + "." + parts[2], "not valid"},
		{"unknown kid", sign(key(t, "k9", 9), header(map[string]any{"alg": "EdDSA", "kid": "k9"}), parts[1]), "not known"},
		{"no kid", sign(k1, header(map[string]any{"alg": "EdDSA"}), parts[1]), "not known"},
		{"signed by another key under a known kid", sign(key(t, "k1", 2), eddsa, parts[1]), "not valid"},
		{"wrong issuer", sign(k1, eddsa, body(func(m map[string]any) { m["iss"] = "https://evil.example" })), "not valid"},
		{"wrong audience", sign(k1, eddsa, body(func(m map[string]any) { m["aud"] = []string{"other"} })), "not valid"},
		{"no expiry", sign(k1, eddsa, body(func(m map[string]any) { delete(m, "exp") })), "not valid"},
		{"lifetime over the maximum", sign(k1, eddsa, body(func(m map[string]any) { m["exp"] = m["iat"].(float64) + 3600 })), "over the maximum"},
		{"no session", sign(k1, eddsa, body(func(m map[string]any) { delete(m, "sid") })), "not valid"},
		{"subject not a user id", sign(k1, eddsa, body(func(m map[string]any) { m["sub"] = "root" })), "not valid"},
		{"unknown claim (strict)", sign(k1, eddsa, body(func(m map[string]any) { m["scope"] = "all" })), ""},
		{"issued in the future", sign(k1, eddsa, body(func(m map[string]any) {
			m["iat"] = m["iat"].(float64) + 600
			m["nbf"] = m["iat"]
			m["exp"] = m["iat"].(float64) + 60
		})), "not valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := i.Verify(tc.token)
			if tc.want == "" {
				// Claims this issuer does not know are ignored (only the
				// JSON must be strict); the token is otherwise good.
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if apperr.CodeOf(err) != apperr.Unauthenticated {
				t.Fatalf("code %q, want unauthenticated (%v)", apperr.CodeOf(err), err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestExpiryWithLeeway(t *testing.T) {
	c := &clock{time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	i := issuer(t, c, key(t, "k1", 1))
	tok, issued, err := i.Issue(lead)
	if err != nil {
		t.Fatal(err)
	}
	c.t = issued.ExpiresAt.Add(Leeway - time.Second)
	if _, err := i.Verify(tok); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	c.t = issued.ExpiresAt.Add(Leeway + time.Second)
	if _, err := i.Verify(tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("after expiry: %v", err)
	}
}

// TestRotation: a new key signs while the old one still verifies what it
// signed; once the old key is dropped its tokens are refused.
func TestRotation(t *testing.T) {
	c := &clock{time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	old, next := key(t, "2026-11", 1), key(t, "2026-12", 2)
	before := issuer(t, c, old)
	oldTok, _, err := before.Issue(lead)
	if err != nil {
		t.Fatal(err)
	}
	during := issuer(t, c, next, old)
	newTok, _, err := during.Issue(lead)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
		if _, err := during.Verify(tok); err != nil {
			t.Fatalf("%s token during rotation: %v", name, err)
		}
	}
	h, _ := base64.RawURLEncoding.DecodeString(newTok[:strings.Index(newTok, ".")])
	if !strings.Contains(string(h), `"kid":"2026-12"`) {
		t.Fatalf("new token's header %s does not name the new key", h)
	}
	after := issuer(t, c, next)
	if _, err := after.Verify(oldTok); err == nil || !strings.Contains(err.Error(), "not known") {
		t.Fatalf("old token after the old key was dropped: %v", err)
	}
	if _, err := after.Verify(newTok); err != nil {
		t.Fatalf("new token after rotation: %v", err)
	}
}

func TestNewRefusesBadConfigNamingTheField(t *testing.T) {
	k := key(t, "k1", 1)
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no issuer", Config{Audience: "a", Keys: []Key{k}}, "issuer"},
		{"no audience", Config{Issuer: "i", Keys: []Key{k}}, "audience"},
		{"ttl over 15 min", Config{Issuer: "i", Audience: "a", TTL: 16 * time.Minute, Keys: []Key{k}}, "ttl"},
		{"ttl under a minute", Config{Issuer: "i", Audience: "a", TTL: time.Second, Keys: []Key{k}}, "ttl"},
		{"no keys", Config{Issuer: "i", Audience: "a"}, "keys"},
		{"bad key id", Config{Issuer: "i", Audience: "a", Keys: []Key{{ID: "a b", Private: k.Private}}}, "keys[0].id"},
		{"duplicate key id", Config{Issuer: "i", Audience: "a", Keys: []Key{k, key(t, "k1", 2)}}, "keys[1].id"},
		{"short key", Config{Issuer: "i", Audience: "a", Keys: []Key{{ID: "k", Private: k.Private[:10]}}}, "keys[0].private"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			var fe *apperr.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("error %v, want a FieldError naming %q", err, tc.field)
			}
		})
	}
}

func TestIssueRefusesIncompleteClaims(t *testing.T) {
	i := issuer(t, &clock{time.Now()}, key(t, "k1", 1))
	for _, c := range []Claims{{Role: "HR", SessionID: "s"}, {UserID: 1, SessionID: "s"}, {UserID: 1, Role: "HR"}} {
		if _, _, err := i.Issue(c); err == nil {
			t.Fatalf("issued %+v", c)
		}
	}
}

func TestParseKeys(t *testing.T) {
	seed := base64.StdEncoding.EncodeToString(make([]byte, 32))
	keys, err := ParseKeys("new:" + seed + ", old:" + strings.TrimRight(base64.URLEncoding.EncodeToString(make([]byte, 32)), "="))
	if err != nil || len(keys) != 2 || keys[0].ID != "new" || keys[1].ID != "old" {
		t.Fatalf("%v %v", keys, err)
	}
	for _, bad := range []string{"", "nokey", ":" + seed, "k:short", "k:!!!"} {
		_, err := ParseKeys(bad)
		if err == nil {
			t.Fatalf("%q accepted", bad)
		}
		if strings.Contains(err.Error(), seed) {
			t.Fatalf("error echoes key material: %v", err)
		}
	}
}

// FuzzVerify: any input is refused or verified, never a panic, and only a
// token this issuer signed verifies.
func FuzzVerify(f *testing.F) {
	c := &clock{time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	i := issuer(f, c, key(f, "k1", 1))
	good, _, err := i.Issue(lead)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("e30.e30.")
	f.Add(good[:len(good)-2])
	f.Fuzz(func(t *testing.T, tok string) {
		got, err := i.Verify(tok)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Unauthenticated {
				t.Fatalf("refusal with code %q", apperr.CodeOf(err))
			}
			return
		}
		if got.UserID <= 0 || got.SessionID == "" || got.ExpiresAt.Sub(got.IssuedAt) > MaxTTL {
			t.Fatalf("verified bad claims %+v", got)
		}
	})
}

// TestGenerateAndFormatKey: a generated key's configuration form parses
// back to the same key.
func TestGenerateAndFormatKey(t *testing.T) {
	k, err := GenerateKey("k-2026")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseKeys(FormatKey(k))
	if err != nil || len(keys) != 1 || keys[0].ID != "k-2026" || !keys[0].Private.Equal(k.Private) {
		t.Fatalf("parsed %v, %v", keys, err)
	}
	if _, err := GenerateKey("bad id"); err == nil {
		t.Fatal("a key id with a space was accepted")
	}
}
