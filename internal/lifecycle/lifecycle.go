// Package lifecycle is the one contract every long-running part of the
// system follows (DESIGN.md §7, issue 13): a Service starts quickly and
// returns once it is ready or has failed, stops within the context it is
// given, and tolerates Stop without Start and a second Stop. A Group starts
// its members in order and stops them in reverse, so that a part never
// outlives what it depends on. Loop turns a blocking Run(ctx) function into
// a Service, and Every is the one ticker loop.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Service is a long-running part: Start begins its work and returns quickly
// (once ready, or with the reason it cannot start); Stop ends the work and
// returns when every goroutine it started has returned, or with ctx's error
// when ctx ends first. Stop without Start and a second Stop return nil.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Loop is a Service around a function that works until its context ends
// (the shape of a hub's or a sweeper's Run). Start runs fn in a goroutine
// under a context of its own, derived from Start's context without its
// cancellation (Stop ends it); Stop cancels that context and waits for fn to
// return. An fn that returns early with an error is logged and reported by
// Stop; Err reports it at once.
type Loop struct {
	name   string
	fn     func(ctx context.Context) error
	logger *slog.Logger

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
	stopped bool
}

// NewLoop returns the Loop named name (for logs and errors) around fn.
// A nil logger discards.
func NewLoop(name string, logger *slog.Logger, fn func(ctx context.Context) error) *Loop {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Loop{name: name, fn: fn, logger: logger}
}

// Name is the loop's name.
func (l *Loop) Name() string { return l.name }

// Start runs the loop's function in a goroutine. Starting twice, or after
// Stop, is an error.
func (l *Loop) Start(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return fmt.Errorf("lifecycle: %s: start after stop", l.name)
	}
	if l.done != nil {
		return fmt.Errorf("lifecycle: %s: started twice", l.name)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		err := l.fn(runCtx)
		if err != nil && runCtx.Err() == nil {
			l.logger.ErrorContext(runCtx, "service stopped on its own", "service", l.name, "err", err)
		}
		if runCtx.Err() != nil && errors.Is(err, runCtx.Err()) {
			err = nil // stopped, as asked
		}
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
	}()
	return nil
}

// Stop ends the loop and waits for its function to return, or for ctx.
func (l *Loop) Stop(ctx context.Context) error {
	l.mu.Lock()
	l.stopped = true
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("lifecycle: %s: stop: %w", l.name, ctx.Err())
	}
	if err := l.Err(); err != nil {
		return fmt.Errorf("lifecycle: %s: %w", l.name, err)
	}
	return nil
}

// Err is the error the loop's function returned before it was stopped, or
// nil (still running, stopped as asked, or never started).
func (l *Loop) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Member is a Service with the name a Group logs and reports it by.
type Member struct {
	Name    string
	Service Service
}

// Group starts its members in order and stops them in reverse order.
type Group struct {
	members []Member
	logger  *slog.Logger

	mu      sync.Mutex
	started int // how many members started
}

// NewGroup returns a Group of members. A nil logger discards.
func NewGroup(logger *slog.Logger, members ...Member) *Group {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Group{members: members, logger: logger}
}

// Start starts every member in order. When one fails, the members already
// started are stopped in reverse (within stopTimeout) and the failure is
// returned, naming the member.
func (g *Group) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started > 0 {
		return errors.New("lifecycle: group started twice")
	}
	for i, m := range g.members {
		if err := m.Service.Start(ctx); err != nil {
			g.started = i
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			defer cancel()
			return errors.Join(fmt.Errorf("lifecycle: start %s: %w", m.Name, err), g.stopLocked(stopCtx))
		}
		g.started = i + 1
	}
	return nil
}

// stopTimeout bounds the clean-up of a group whose start failed.
const stopTimeout = 30 * time.Second

// Stop stops the started members in reverse order; each gets what is left
// of ctx. Every member is asked to stop even when an earlier one failed;
// the failures are joined.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopLocked(ctx)
}

func (g *Group) stopLocked(ctx context.Context) error {
	var errs []error
	for i := g.started - 1; i >= 0; i-- {
		m := g.members[i]
		if err := m.Service.Stop(ctx); err != nil {
			g.logger.ErrorContext(ctx, "stop failed", "service", m.Name, "err", err)
			errs = append(errs, fmt.Errorf("lifecycle: stop %s: %w", m.Name, err))
		}
	}
	g.started = 0
	return errors.Join(errs...)
}

// Every calls fn now (when immediately is true) and then every interval
// until ctx ends; a call that overruns the interval delays the next one
// rather than piling up. It returns ctx's error. The one ticker loop of the
// code base: a part with periodic work runs it as NewLoop(name, logger,
// func(ctx) error { return Every(ctx, interval, true, work) }).
func Every(ctx context.Context, interval time.Duration, immediately bool, fn func(ctx context.Context)) error {
	return EveryOrWake(ctx, interval, immediately, nil, fn) // a nil channel never wakes
}
