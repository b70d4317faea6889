package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

func TestLoopKeepsTheContract(t *testing.T) {
	lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
		return lifecycle.NewLoop("ticker", logtest.New(t), func(ctx context.Context) error {
			return lifecycle.Every(ctx, 10*time.Millisecond, true, func(context.Context) {})
		})
	})
}

func TestGroupKeepsTheContract(t *testing.T) {
	lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
		l := logtest.New(t)
		loop := func(name string) lifecycle.Member {
			return lifecycle.Member{Name: name, Service: lifecycle.NewLoop(name, l, func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			})}
		}
		return lifecycle.NewGroup(l, loop("a"), loop("b"))
	})
}

// recorder is a Service that records its starts and stops in a shared log.
type recorder struct {
	name     string
	log      *[]string
	mu       *sync.Mutex
	startErr error
	stopErr  error
}

func (r recorder) Start(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.log = append(*r.log, "start "+r.name)
	return r.startErr
}

func (r recorder) Stop(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.log = append(*r.log, "stop "+r.name)
	return r.stopErr
}

func TestGroupOrder(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		startErr  map[string]error
		stopErr   map[string]error
		wantStart string // error substring from Start, "" for none
		wantStop  string
		want      []string
	}{
		{name: "starts in order, stops in reverse",
			want: []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}},
		{name: "a failed start stops those started, in reverse", startErr: map[string]error{"c": boom}, wantStart: "start c: boom",
			want: []string{"start a", "start b", "start c", "stop b", "stop a"}},
		{name: "every member is stopped even after a failure", stopErr: map[string]error{"b": boom}, wantStop: "stop b: boom",
			want: []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			var mu sync.Mutex
			var members []lifecycle.Member
			for _, n := range []string{"a", "b", "c"} {
				members = append(members, lifecycle.Member{Name: n, Service: recorder{name: n, log: &log, mu: &mu, startErr: tt.startErr[n], stopErr: tt.stopErr[n]}})
			}
			g := lifecycle.NewGroup(logtest.New(t), members...)
			ctx := context.Background()
			err := g.Start(ctx)
			if (err == nil) != (tt.wantStart == "") || err != nil && !strings.Contains(err.Error(), tt.wantStart) {
				t.Fatalf("Start: %v, want %q", err, tt.wantStart)
			}
			if err == nil {
				err = g.Stop(ctx)
				if (err == nil) != (tt.wantStop == "") || err != nil && !strings.Contains(err.Error(), tt.wantStop) {
					t.Fatalf("Stop: %v, want %q", err, tt.wantStop)
				}
			}
			if err := g.Stop(ctx); err != nil {
				t.Fatalf("second Stop: %v", err)
			}
			if !slices.Equal(log, tt.want) {
				t.Fatalf("calls %v, want %v", log, tt.want)
			}
		})
	}
}

func TestLoopReportsAnEarlyFailureAndAStuckStop(t *testing.T) {
	ctx := context.Background()
	failed := lifecycle.NewLoop("failing", nil, func(context.Context) error { return errors.New("database gone") })
	if err := failed.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for failed.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := failed.Stop(ctx); err == nil || !strings.Contains(err.Error(), "failing: database gone") {
		t.Fatalf("Stop after an early failure: %v, want the failure named", err)
	}

	release := make(chan struct{})
	stuck := lifecycle.NewLoop("stuck", nil, func(context.Context) error { <-release; return nil })
	if err := stuck.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := stuck.Stop(stopCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop of a loop that ignores its context: %v, want the deadline", err)
	}
	close(release)
	if err := stuck.Start(ctx); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
}

func TestEvery(t *testing.T) {
	var n atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	err := lifecycle.Every(ctx, 20*time.Millisecond, true, func(context.Context) { n.Add(1) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Every returned %v, want the context's error", err)
	}
	// Immediately, then about every 20 ms for 120 ms: at least 3 calls on a
	// loaded machine, never more than 1 + 120/20.
	if got := n.Load(); got < 3 || got > 7 {
		t.Fatalf("%d calls, want 3..7", got)
	}
	if err := lifecycle.Every(context.Background(), 0, false, func(context.Context) {}); err == nil {
		t.Fatal("a zero interval was accepted")
	}
}

func TestEveryOrWake(t *testing.T) {
	var n atomic.Int64
	wake := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- lifecycle.EveryOrWake(ctx, time.Hour, true, wake, func(context.Context) { n.Add(1) })
	}()
	wake <- struct{}{}
	wake <- struct{}{} // accepted only once the first wake's call returned
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("EveryOrWake returned %v, want the context's error", err)
	}
	// Immediately, then once per wake (the second may be cut by cancel).
	if got := n.Load(); got < 2 || got > 3 {
		t.Fatalf("%d calls, want 2..3", got)
	}
	if err := lifecycle.EveryOrWake(context.Background(), 0, false, nil, func(context.Context) {}); err == nil {
		t.Fatal("a zero interval was accepted")
	}
}
