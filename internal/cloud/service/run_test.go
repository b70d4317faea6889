package service

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// recorder is a lifecycle.Service that records its calls.
type recorder struct {
	startErr       error
	started, stops int
	stopCtxErr     error // Stop's context's error when it was called
}

func (r *recorder) Start(context.Context) error { r.started++; return r.startErr }

func (r *recorder) Stop(ctx context.Context) error {
	r.stops++
	r.stopCtxErr = ctx.Err()
	return nil
}

// TestRunUntil: RunUntil stops the service once its context ends or the
// failed channel closes, with a stop context of its own, and stops it at
// once when Start fails, returning the failure.
func TestRunUntil(t *testing.T) {
	for _, tc := range []struct {
		name     string
		startErr error
		end      func(cancel context.CancelFunc, failed chan struct{})
	}{
		{"context ends", nil, func(cancel context.CancelFunc, _ chan struct{}) { cancel() }},
		{"listener fails", nil, func(_ context.CancelFunc, failed chan struct{}) { close(failed) }},
		{"start fails", errors.New("bind: address in use"), func(context.CancelFunc, chan struct{}) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			failed := make(chan struct{})
			r := &recorder{startErr: tc.startErr}
			done := make(chan error, 1)
			go func() { done <- RunUntil(ctx, r, failed, time.Minute) }()
			tc.end(cancel, failed)
			select {
			case err := <-done:
				if !errors.Is(err, tc.startErr) {
					t.Fatalf("RunUntil: %v, want %v", err, tc.startErr)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("RunUntil did not return")
			}
			if r.started != 1 || r.stops != 1 {
				t.Errorf("started %d times, stopped %d times; want 1 and 1", r.started, r.stops)
			}
			if r.stopCtxErr != nil {
				t.Errorf("Stop's context had ended (%v); it must outlive Run's", r.stopCtxErr)
			}
		})
	}
}

// TestOwnedPoolsCloseOnce: Close closes every owned pool, and a second
// Close does nothing.
func TestOwnedPoolsCloseOnce(t *testing.T) {
	var owned OwnedPools
	var pools []*pgxpool.Pool
	for range 2 {
		p, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none") // lazy: nothing connects
		if err != nil {
			t.Fatal(err)
		}
		if owned.Own(p) != p {
			t.Fatal("Own did not return its pool")
		}
		pools = append(pools, p)
	}
	owned.Close()
	owned.Close()
	for i, p := range pools {
		if _, err := p.Acquire(context.Background()); err == nil || !strings.Contains(err.Error(), "closed pool") {
			t.Errorf("pool %d after Close: Acquire gave %v, want a closed pool", i, err)
		}
	}
}
