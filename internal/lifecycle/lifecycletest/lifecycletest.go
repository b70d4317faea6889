// Package lifecycletest checks that a lifecycle.Service keeps the contract:
// it starts quickly, stops within its context, and tolerates Stop without
// Start and a second Stop. Every service's tests call Conformance.
package lifecycletest

import (
	"context"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
)

// Bounds of the contract as the check measures it.
const (
	// StartWithin is how quickly Start must return.
	StartWithin = 5 * time.Second
	// StopWithin is the context Stop is given; it must return within it
	// (plus a little scheduling slack).
	StopWithin = 5 * time.Second
)

// Conformance runs the contract's checks as subtests on fresh services made
// by newService (called once per check; clean-up belongs to t.Cleanup).
func Conformance(t *testing.T, newService func(t *testing.T) lifecycle.Service) {
	t.Helper()
	t.Run("stop without start", func(t *testing.T) {
		s := newService(t)
		ctx, cancel := context.WithTimeout(context.Background(), StopWithin)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("Stop without Start: %v", err)
		}
	})
	t.Run("start quickly, stop within the context, stop twice", func(t *testing.T) {
		s := newService(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		began := time.Now()
		if err := s.Start(ctx); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if d := time.Since(began); d > StartWithin {
			t.Errorf("Start took %v, want at most %v", d, StartWithin)
		}
		stopCtx, stopCancel := context.WithTimeout(context.Background(), StopWithin)
		defer stopCancel()
		began = time.Now()
		if err := s.Stop(stopCtx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if d := time.Since(began); d > StopWithin+time.Second {
			t.Errorf("Stop took %v, want within its context's %v", d, StopWithin)
		}
		if err := s.Stop(stopCtx); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
	})
	t.Run("start's context ending does not stop it", func(t *testing.T) {
		// Start's context bounds starting, not the service's life: a
		// service ends only by Stop.
		s := newService(t)
		ctx, cancel := context.WithCancel(context.Background())
		if err := s.Start(ctx); err != nil {
			cancel()
			t.Fatalf("Start: %v", err)
		}
		cancel()
		stopCtx, stopCancel := context.WithTimeout(context.Background(), StopWithin)
		defer stopCancel()
		if err := s.Stop(stopCtx); err != nil {
			t.Fatalf("Stop after Start's context ended: %v", err)
		}
	})
}
