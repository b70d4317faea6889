package throttle

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkVerifiedKey is the limiter's cost on a rightful gateway's
// request: Check (a verified credential) and Succeed.
func BenchmarkVerifiedKey(b *testing.B) {
	l, err := New(Config{}, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.Sum256([]byte("scgw_the-right-key"))
	a := Attempt{Kind: "api_key", Source: netip.MustParseAddr("192.0.2.1"), Prefix: "scgw_abcd", Credential: h[:]}
	l.Succeed(a)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !l.Check(a).OK {
				b.Fatal("refused")
			}
			l.Succeed(a)
		}
	})
}

// BenchmarkRefusedGuess is the cost of refusing a guess from a locked
// source (what an attacker's request costs once locked).
func BenchmarkRefusedGuess(b *testing.B) {
	l, err := New(Config{}, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	src := netip.MustParseAddr("2001:db8::1")
	for i := range 10 {
		l.Fail(Attempt{Kind: "api_key", Source: src, Prefix: fmt.Sprint("scgw_", i)}, "unknown")
	}
	h := sha256.Sum256([]byte("guess"))
	a := Attempt{Kind: "api_key", Source: src, Prefix: "scgw_abcd", Credential: h[:]}
	b.ReportAllocs()
	for b.Loop() {
		if l.Check(a).OK {
			b.Fatal("let through")
		}
	}
}
