package auth_test

import (
	"net/http/httptest"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

func TestAPIKeyAttempt(t *testing.T) {
	key, hash, err := auth.NewSecret(auth.PrefixAPIKey)
	if err != nil {
		t.Fatal(err)
	}
	a := auth.APIKeyAttempt(throttle.Source(httptest.NewRequest("GET", "/", nil), nil), key)
	if a.Kind != auth.KindAPIKey || a.Prefix != key[:9] || string(a.Credential) != string(hash) || !a.Source.IsValid() {
		t.Fatalf("%+v", a)
	}
	for _, bad := range []string{"nope", auth.PrefixProvisioningToken + key[5:], key + string(make([]byte, 100))} {
		if a := auth.APIKeyAttempt(a.Source, bad); a.Prefix != "" || a.Credential != nil {
			t.Errorf("a malformed key %.12q… is counted by prefix or digest: %+v", bad, a)
		}
	}
}

// BenchmarkThrottleOverhead is what the throttle adds to every
// authenticated request, apart from the lookup itself: the request's
// source, the key's prefix and SHA-256, Check (a verified key) and Succeed.
func BenchmarkThrottleOverhead(b *testing.B) {
	lim, err := throttle.New(throttle.Config{}, throttle.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	key, _, err := auth.NewSecret(auth.PrefixAPIKey)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", protocol.PathGatewayPing, nil)
	r.RemoteAddr = "192.0.2.1:40000"
	lim.Succeed(auth.APIKeyAttempt(throttle.Source(r, nil), key))
	b.ReportAllocs()
	for b.Loop() {
		att := auth.APIKeyAttempt(throttle.Source(r, nil), key)
		if !lim.Check(att).OK {
			b.Fatal("refused")
		}
		lim.Succeed(att)
	}
}
