package agentauth

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

const secret = protocol.EnrolmentSecretPrefix + "agentauth-tests-0123456789abcdefghijklmnopqrstuvwx"

func newAuthority(tb testing.TB) (*Authority, *buffer.Buffer) {
	tb.Helper()
	b, err := buffer.Open(context.Background(), buffer.Options{Config: buffer.Config{Path: filepath.Join(tb.TempDir(), "b.sqlite"), MaxBytes: 1 << 30, Synchronous: "NORMAL"}, FSUsage: func(string) (float64, error) { return 0, nil }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	a, err := New(context.Background(), b, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := a.SetVerifier(context.Background(), Verifier(secret)); err != nil {
		tb.Fatal(err)
	}
	return a, b
}

func TestVerifierIsCheckedAndKept(t *testing.T) {
	a, b := newAuthority(t)
	for _, bad := range []string{secret, "sha256:zz", "sha256:" + "ab", "md5:" + Verifier(secret)[7:]} {
		if err := a.SetVerifier(context.Background(), bad); err == nil {
			t.Errorf("verifier %q accepted", bad)
		}
	}
	// A new Authority over the same buffer knows the stored verifier.
	a2, err := New(context.Background(), b, Options{})
	if err != nil || !a2.HasVerifier() {
		t.Fatalf("stored verifier not loaded: %v", err)
	}
	if _, err := a2.Enroll(context.Background(), protocol.AgentEnrollRequest{EnrolmentSecret: secret, AgentUID: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a2.Enroll(context.Background(), protocol.AgentEnrollRequest{EnrolmentSecret: secret + "x", AgentUID: "a"}); !errors.Is(err, ErrBadSecret) {
		t.Fatalf("wrong secret: %v", err)
	}
	if err := a2.SetVerifier(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a2.Enroll(context.Background(), protocol.AgentEnrollRequest{EnrolmentSecret: secret, AgentUID: "a"}); !errors.Is(err, ErrNoVerifier) {
		t.Fatalf("without a verifier: %v", err)
	}
}

// TestRevokeRacingLookups: lookups of a credential race with its
// revocation; once Revoke has returned, no lookup succeeds (a lookup that
// read the row before the delete must not leave it in the cache).
func TestRevokeRacingLookups(t *testing.T) {
	a, _ := newAuthority(t)
	ctx := context.Background()
	for round := range 200 {
		uid := "agent-" + string(rune('a'+round%26))
		cred, err := a.Enroll(ctx, protocol.AgentEnrollRequest{EnrolmentSecret: secret, AgentUID: uid})
		if err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					_, _ = a.Authenticate(ctx, cred)
				}
			}()
		}
		if _, err := a.Revoke(ctx, uid); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			if got, err := a.Authenticate(ctx, cred); !errors.Is(err, ErrInvalid) {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("round %d: revoked credential authenticated as %q (%v)", round, got, err)
			}
		}
		stop.Store(true)
		wg.Wait()
		if _, err := a.Authenticate(ctx, cred); !errors.Is(err, ErrInvalid) {
			t.Fatalf("round %d: revoked credential cached by a racing lookup", round)
		}
	}
}

// BenchmarkAuthenticate is the hot path: a cached credential.
func BenchmarkAuthenticate(b *testing.B) {
	a, _ := newAuthority(b)
	cred, err := a.Enroll(context.Background(), protocol.AgentEnrollRequest{EnrolmentSecret: secret, AgentUID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Authenticate(ctx, cred); err != nil {
				b.Fatal(err)
			}
		}
	})
}
