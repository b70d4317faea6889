package devices

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// TimeoutError is an adapter call that did not finish within its timeout.
// Abandoned is true when the call ignored its context and was left running
// (the supervisor closes that adapter and builds a new one).
type TimeoutError struct {
	// Op is the call ("connect", "fetch", "execute open_door", …).
	Op string
	// After is the call's timeout.
	After time.Duration
	// Abandoned is true when the call did not return even after the grace
	// period.
	Abandoned bool
	// Err is what the call returned, when it did return.
	Err error
}

// Error names the call and the timeout.
func (e *TimeoutError) Error() string {
	if e.Abandoned {
		return fmt.Sprintf("%s did not return within %s (ignored its context; abandoned)", e.Op, e.After)
	}
	return fmt.Sprintf("%s timed out after %s: %v", e.Op, e.After, e.Err)
}

// Unwrap returns what the call returned.
func (e *TimeoutError) Unwrap() error { return e.Err }

// PanicError is a panic recovered from an adapter call or its event
// stream: a failure of that device only.
type PanicError struct {
	// Op is the call that panicked.
	Op string
	// Value is the panic's value.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

// Error names the call and the panic's value.
func (e *PanicError) Error() string { return fmt.Sprintf("%s panicked: %v", e.Op, e.Value) }

// storeError is a failure of the buffer, not of the device.
type storeError struct{ err error }

func (e *storeError) Error() string { return "buffer: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// FailureBuffer is the failure class of a session ended because the buffer
// refused the device's events (full, closed).
const FailureBuffer = "buffer"

// classify returns the failure class of err.
func classify(err error) string {
	var ae *AuthError
	var pe *PanicError
	var te *TimeoutError
	var pre *ProtocolError
	var se *storeError
	switch {
	case errors.As(err, &ae):
		return FailureAuth
	case errors.As(err, &pe):
		return FailurePanic
	case errors.As(err, &te), errors.Is(err, context.DeadlineExceeded):
		return FailureTimeout
	case errors.As(err, &pre):
		return FailureProtocol
	case errors.As(err, &se):
		return FailureBuffer
	}
	return FailureNetwork
}

// call runs fn under a timeout in its own goroutine, so that an adapter
// that ignores its context cannot stall the caller: after timeout plus
// grace it is abandoned (*TimeoutError with Abandoned). A panic in fn is
// recovered and returned as a *PanicError. When ctx ends first, call
// returns ctx's error at once.
func call[T any](ctx context.Context, op string, timeout, grace time.Duration, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type outcome struct {
		v   T
		err error
	}
	ch := make(chan outcome, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- outcome{err: &PanicError{Op: op, Value: r, Stack: debug.Stack()}}
			}
		}()
		v, err := fn(cctx)
		ch <- outcome{v, err}
	}()
	t := time.NewTimer(timeout + grace)
	defer t.Stop()
	select {
	case o := <-ch:
		if o.err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return o.v, &TimeoutError{Op: op, After: timeout, Err: o.err}
		}
		return o.v, o.err
	case <-t.C:
		return zero, &TimeoutError{Op: op, After: timeout, Abandoned: true}
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// recentKeys is a bounded set of the event keys appended most recently, so
// that a catch-up re-reading what the live stream delivered does not append
// it again. Not safe for concurrent use (the supervisor holds its lock).
type recentKeys struct {
	set  map[string]struct{}
	ring []string // insertion order, up to max; then overwritten from next
	next int
	max  int
}

// newRecentKeys remembers up to n keys. Its memory grows with the keys
// added, not with n: an idle device costs next to nothing (at the full
// 4,096 keys a set is ≈ 300 KiB).
func newRecentKeys(n int) *recentKeys {
	return &recentKeys{set: map[string]struct{}{}, max: n}
}

func (r *recentKeys) has(k string) bool { _, ok := r.set[k]; return ok }

func (r *recentKeys) add(k string) {
	if r.has(k) || r.max <= 0 {
		return
	}
	if len(r.ring) < r.max {
		r.ring = append(r.ring, k)
		r.set[k] = struct{}{}
		return
	}
	delete(r.set, r.ring[r.next])
	r.ring[r.next] = k
	r.set[k] = struct{}{}
	r.next = (r.next + 1) % r.max
}
