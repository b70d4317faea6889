package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/backoff"
	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// State is what a supervisor is doing.
type State string

// Supervisor states.
const (
	// StateConnecting: connecting, reading the device's identity and
	// catching up.
	StateConnecting State = "connecting"
	// StateOnline: the session is up and live events are followed.
	StateOnline State = "online"
	// StateBackoff: waiting before the next attempt after a failure.
	StateBackoff State = "backoff"
	// StateIsolated: the circuit breaker is open after repeated failures;
	// no attempt until the cool-down ends.
	StateIsolated State = "isolated"
	// StateAuthFailed: the device refused the credentials; no automatic
	// retry until its lockout has passed (RetryAt) or, without one, until
	// the configuration changes.
	StateAuthFailed State = "auth_failed"
	// StateStopped: the supervisor has stopped.
	StateStopped State = "stopped"
)

// allStates lists the states (the state gauge's label values).
func allStates() []State {
	return []State{StateConnecting, StateOnline, StateBackoff, StateIsolated, StateAuthFailed, StateStopped}
}

// Errors of Execute.
var (
	// ErrOffline: the device was not online before the command's deadline
	// (or cannot be: its credentials were refused).
	ErrOffline = errors.New("device offline")
	// ErrQueueFull: too many commands are already waiting for the device.
	ErrQueueFull = errors.New("device command queue full")
	// ErrStopped: the supervisor has stopped (the device was removed).
	ErrStopped = errors.New("device supervisor stopped")
)

// SupervisorConfig is the supervisors' tunables (the device.* keys of the
// gateway's configuration). Zero fields take the defaults named.
type SupervisorConfig struct {
	// CallTimeout bounds Connect, Info, Execute and Close (10 s).
	CallTimeout time.Duration
	// FetchTimeout bounds one catch-up Fetch, all pages (2 min).
	FetchTimeout time.Duration
	// Grace is how long past its timeout a call is waited for before it is
	// abandoned (2 s).
	Grace time.Duration
	// CatchupInterval is the period of the catch-up Fetch while online,
	// which also probes the session (1 min).
	CatchupInterval time.Duration
	// BackoffInitial and BackoffMax bound the reconnect delay: full jitter
	// up to a cap doubling per consecutive failure (1 s, 60 s).
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// HealthyAfter is how long a session must last for the failure count
	// (and so the backoff) to reset (1 min).
	HealthyAfter time.Duration
	// IsolateAfter consecutive failures open the circuit breaker for
	// IsolateFor (5, 5 min).
	IsolateAfter int
	IsolateFor   time.Duration
	// RebootGrace is how long after a reboot the device answered that its
	// failures to reconnect are expected: they never isolate it and the
	// reconnect delay stays short (3 min).
	RebootGrace time.Duration
	// CommandTimeout is a command's deadline when its context has none
	// (30 s).
	CommandTimeout time.Duration
	// CommandQueue bounds the commands waiting per device (16).
	CommandQueue int
	// EventQueue bounds the live events waiting to be buffered (256: a
	// terminal badges a few times a second; 32 KiB of channel per device).
	EventQueue int
	// BatchMax bounds the events of one Append (256).
	BatchMax int
	// RecentKeys bounds the set of event keys recently appended (4096).
	RecentKeys int
}

// withDefaults fills the zero fields.
func (c SupervisorConfig) withDefaults() SupervisorConfig {
	d := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	n := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	d(&c.CallTimeout, 10*time.Second)
	d(&c.FetchTimeout, 2*time.Minute)
	d(&c.Grace, 2*time.Second)
	d(&c.CatchupInterval, time.Minute)
	d(&c.BackoffInitial, time.Second)
	d(&c.BackoffMax, time.Minute)
	d(&c.HealthyAfter, time.Minute)
	n(&c.IsolateAfter, 5)
	d(&c.IsolateFor, 5*time.Minute)
	d(&c.RebootGrace, 3*time.Minute)
	d(&c.CommandTimeout, 30*time.Second)
	n(&c.CommandQueue, 16)
	n(&c.EventQueue, 256)
	n(&c.BatchMax, 256)
	n(&c.RecentKeys, 4096)
	c.BackoffMax = max(c.BackoffMax, c.BackoffInitial)
	return c
}

// Store is where device events and cursors go: the gateway's buffer.
type Store interface {
	Append(ctx context.Context, recs []buffer.Record) ([]buffer.Appended, error)
	State(ctx context.Context, key string) (string, error)
	SetState(ctx context.Context, key, value string) error
}

// SupervisorOptions are what a supervisor is given. Registry and Store are
// required.
type SupervisorOptions struct {
	Config   SupervisorConfig
	Registry *Registry
	Store    Store
	// Metrics receives the device's metrics; nil keeps them unregistered.
	Metrics *Metrics
	// Logger receives JSON logs; nil discards.
	Logger *slog.Logger
	// TracerProvider makes each append of a device's events a span
	// (devices.append_events) whose context the buffer keeps with them, so
	// the upload and the cloud's ingest join its trace; nil: no tracing.
	TracerProvider trace.TracerProvider
}

// Counts are a supervisor's counters since it started.
type Counts struct {
	Connects      int64 `json:"connects"`
	Reconnects    int64 `json:"reconnects"`
	LiveEvents    int64 `json:"live_events"`
	CatchupEvents int64 `json:"catchup_events"`
	Invalid       int64 `json:"invalid_events"`
	Failures      int64 `json:"failures"`
	Panics        int64 `json:"panics"`
	Commands      int64 `json:"commands"`
	CommandErrors int64 `json:"command_errors"`
}

// Status is a device's state as its supervisor sees it (/health/details).
type Status struct {
	Name        string `json:"name"`
	ID          int64  `json:"id,omitempty"`
	AdapterType string `json:"adapter_type"`
	Host        string `json:"host"`
	Port        int    `json:"port,omitempty"`
	State       State  `json:"state"`
	// Serial is the device's serial (from Info once connected).
	Serial string `json:"serial,omitempty"`
	Info   *Info  `json:"info,omitempty"`
	// LastError and LastErrorClass describe the latest failure.
	LastError      string     `json:"last_error,omitempty"`
	LastErrorClass string     `json:"last_error_class,omitempty"`
	LastErrorAt    *time.Time `json:"last_error_at,omitempty"`
	// LastEventAt is when an event of the device was last buffered.
	LastEventAt    *time.Time `json:"last_event_at,omitempty"`
	ConnectedSince *time.Time `json:"connected_since,omitempty"`
	// RetryAt is when the next attempt is due (backoff, isolated, or
	// auth_failed with a lockout); nil otherwise.
	RetryAt *time.Time `json:"retry_at,omitempty"`
	// ConsecutiveFailures counts failures since the last healthy session.
	ConsecutiveFailures int    `json:"consecutive_failures"`
	Counts              Counts `json:"counts"`
}

// Supervisor runs one device: one goroutine with its own context that
// connects, reads the device's identity, catches up from the persisted
// cursor, follows live events, runs commands one at a time, and on a
// failure closes the adapter and retries with backoff, a circuit breaker
// and no automatic retry after a refused credential. Every adapter call
// runs under a timeout in a goroutine of its own with recover, so a device
// that hangs or panics fails alone.
type Supervisor struct {
	dev   Config
	cfg   SupervisorConfig
	reg   *Registry
	store Store
	m     *Metrics
	log   *slog.Logger
	// tracer makes the appends spans (a no-op without a provider).
	tracer trace.Tracer
	// queue holds the commands waiting for the device (under qmu, at most
	// CommandQueue; a caller that gives up removes its own); qsig wakes the
	// session when one is added.
	qmu   sync.Mutex
	queue []*cmdReq
	qsig  chan struct{}

	mu          sync.Mutex
	st          Status
	rebootUntil time.Time // the grace of a reboot the device answered (see RebootGrace)
	recent      *recentKeys
	invalidSeen map[string]bool

	life     sync.Mutex
	cancel   context.CancelFunc
	done     chan struct{}
	started  bool
	stopping bool

	// onRetry, when set (tests), is told each wait: "backoff" with the
	// delay's cap, "isolate" with the cool-down, "auth" with the lockout.
	onRetry func(kind string, d time.Duration)
}

// NewSupervisor builds the supervisor of dev (validated against the
// registry); it starts nothing.
func NewSupervisor(dev Config, o SupervisorOptions) (*Supervisor, error) {
	if o.Registry == nil || o.Store == nil {
		return nil, errors.New("devices: supervisor needs a registry and a store")
	}
	if err := o.Registry.Validate(dev); err != nil {
		return nil, fmt.Errorf("devices: %s: %w", dev.Name, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := o.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	cfg := o.Config.withDefaults()
	s := &Supervisor{
		dev: dev, cfg: cfg, reg: o.Registry, store: o.Store, m: m,
		tracer:      tracing.OrNoop(o.TracerProvider).Tracer("github.com/staffcontrol/staffcontrol/internal/edge/devices"),
		log:         log.With("device", dev.Name, "adapter_type", dev.Type),
		qsig:        make(chan struct{}, 1),
		recent:      newRecentKeys(cfg.RecentKeys),
		invalidSeen: map[string]bool{},
		done:        make(chan struct{}),
		st: Status{Name: dev.Name, ID: dev.ID, AdapterType: dev.Type, Host: dev.Host, Port: dev.Port,
			Serial: dev.Serial, State: StateConnecting},
	}
	return s, nil
}

// Config is the device's configuration.
func (s *Supervisor) Config() Config { return s.dev }

// Status returns a copy of the device's status.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	if st.Info != nil {
		i := *st.Info
		st.Info = &i
	}
	return st
}

// Start starts the supervisor's goroutine, under a context of its own
// (Start's context bounds nothing after Start returns).
func (s *Supervisor) Start(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.started || s.stopping {
		return fmt.Errorf("devices: %s: started twice or after stop", s.dev.Name)
	}
	s.started = true
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.setState(StateConnecting, nil)
	go s.run(rctx)
	return nil
}

// Stop ends the supervisor and waits for its goroutine (an adapter call
// that ignores its context is abandoned, not waited for), within ctx.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.life.Lock()
	if s.stopping {
		s.life.Unlock()
		if !s.started {
			return nil
		}
		select {
		case <-s.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("devices: stop %s: %w", s.dev.Name, ctx.Err())
		}
	}
	s.stopping = true
	started := s.started
	s.life.Unlock()
	if !started {
		close(s.done)
		s.setState(StateStopped, nil)
		return nil
	}
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("devices: stop %s: %w", s.dev.Name, ctx.Err())
	}
}

// setState records the state and, for the waiting states, when the wait
// ends.
func (s *Supervisor) setState(st State, retryAt *time.Time) {
	s.mu.Lock()
	s.st.State = st
	s.st.RetryAt = retryAt
	if st != StateOnline {
		s.st.ConnectedSince = nil
	}
	s.mu.Unlock()
	s.m.setState(s.dev.Type, s.dev.Name, st)
}

// run is the supervisor's goroutine.
func (s *Supervisor) run(ctx context.Context) {
	defer func() {
		s.setState(StateStopped, nil)
		close(s.done)
	}()
	pol := backoff.Policy{Initial: s.cfg.BackoffInitial, Max: s.cfg.BackoffMax}
	fails := 0
	for ctx.Err() == nil {
		s.setState(StateConnecting, nil)
		online, err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("session ended")
		}
		if online >= s.cfg.HealthyAfter {
			fails = 0
		}
		fails++
		s.failed(err, fails)
		var ae *AuthError
		if errors.As(err, &ae) {
			fails = 0
			if !s.authWait(ctx, ae) {
				return
			}
			continue
		}
		rebooting := time.Now().Before(s.rebootGraceEnd())
		if rebooting && fails >= s.cfg.IsolateAfter {
			// A reboot it was asked for: expected down time, not a fault.
			fails = s.cfg.IsolateAfter - 1
		}
		if fails >= s.cfg.IsolateAfter {
			at := time.Now().Add(s.cfg.IsolateFor)
			s.setState(StateIsolated, &at)
			s.log.Warn("device isolated after repeated failures", "failures", fails, "for", s.cfg.IsolateFor.String(), "err", err)
			s.hook("isolate", s.cfg.IsolateFor)
			if !backoff.Sleep(ctx, s.cfg.IsolateFor) {
				return
			}
			// Half-open: one more failure isolates the device again.
			fails = s.cfg.IsolateAfter - 1
			continue
		}
		attempt := min(fails-1, 30)
		if rebooting {
			attempt = min(attempt, 2) // back within a few seconds of the device
		}
		d := pol.Delay(attempt)
		at := time.Now().Add(d)
		s.setState(StateBackoff, &at)
		s.hook("backoff", pol.Cap(attempt))
		if !backoff.Sleep(ctx, d) {
			return
		}
	}
}

// rebootGraceEnd is when the grace of the last reboot the device answered
// ends (zero: none).
func (s *Supervisor) rebootGraceEnd() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rebootUntil
}

func (s *Supervisor) hook(kind string, d time.Duration) {
	if s.onRetry != nil {
		s.onRetry(kind, d)
	}
}

// failed records a failed session.
func (s *Supervisor) failed(err error, fails int) {
	class := classify(err)
	now := time.Now()
	s.mu.Lock()
	s.st.LastError, s.st.LastErrorClass, s.st.LastErrorAt = err.Error(), class, &now
	s.st.ConsecutiveFailures = fails
	s.st.Counts.Failures++
	if class == FailurePanic {
		s.st.Counts.Panics++
	}
	s.mu.Unlock()
	s.m.failures.WithLabelValues(s.dev.Type, s.dev.Name, class).Inc()
	var pe *PanicError
	if errors.As(err, &pe) {
		s.log.Error("device adapter panicked; reconnecting", "op", pe.Op, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
		return
	}
	s.log.Warn("device session failed", "class", class, "consecutive_failures", fails, "err", err)
}

// authWait holds the device in auth_failed: until the lockout has passed
// when the device named one, otherwise until the supervisor is stopped
// (a configuration change replaces it). It reports whether to go on.
func (s *Supervisor) authWait(ctx context.Context, ae *AuthError) bool {
	if ae.RetryAfter > 0 {
		at := time.Now().Add(ae.RetryAfter)
		s.setState(StateAuthFailed, &at)
		s.log.Error("ALERT: device refused the credentials; retrying once after its lockout", "reason", ae.Reason,
			"retry_after", ae.RetryAfter.String(), "attempts_left", ae.AttemptsLeft)
		s.hook("auth", ae.RetryAfter)
		return backoff.Sleep(ctx, ae.RetryAfter)
	}
	s.setState(StateAuthFailed, nil)
	s.log.Error("ALERT: device refused the credentials; no automatic retry until its configuration changes", "reason", ae.Reason,
		"attempts_left", ae.AttemptsLeft)
	s.hook("auth", 0)
	<-ctx.Done()
	return false
}

// session runs one session: build the adapter, Connect, Info, catch up,
// then follow live events, run commands and catch up periodically until
// something fails. It returns how long the session was online.
func (s *Supervisor) session(ctx context.Context) (time.Duration, error) {
	a, err := s.reg.build(s.dev)
	if err != nil {
		return 0, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.closeAdapter(a)
	if _, err := call(sctx, "connect", s.cfg.CallTimeout, s.cfg.Grace, func(c context.Context) (struct{}, error) {
		return struct{}{}, a.Connect(c)
	}); err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	info, err := call(sctx, "info", s.cfg.CallTimeout, s.cfg.Grace, a.Info)
	if err != nil {
		return 0, fmt.Errorf("info: %w", err)
	}
	serial := info.Serial
	if serial == "" {
		serial = s.dev.Serial
	}
	if serial == "" {
		return 0, &ProtocolError{Op: "info", Err: errors.New("the device reported no serial and none is configured")}
	}
	if s.dev.Serial != "" && s.dev.Serial != serial {
		s.log.Warn("device reports another serial than configured; using the device's", "configured", s.dev.Serial, "reported", serial)
	}
	info.Serial = serial
	s.mu.Lock()
	s.st.Serial, s.st.Info = serial, &info
	s.mu.Unlock()
	if err := s.catchup(sctx, a, serial); err != nil {
		return 0, fmt.Errorf("catch-up: %w", err)
	}

	since := time.Now()
	s.mu.Lock()
	s.st.Counts.Connects++
	reconnect := s.st.Counts.Connects > 1
	if reconnect {
		s.st.Counts.Reconnects++
	}
	s.mu.Unlock()
	if reconnect {
		s.m.reconnect.WithLabelValues(s.dev.Type, s.dev.Name).Inc()
	}
	s.setState(StateOnline, nil)
	s.mu.Lock()
	s.st.ConnectedSince = &since
	s.mu.Unlock()
	s.log.Info("device online", "serial", serial, "model", info.Model, "firmware", info.Firmware)

	evCh := make(chan Event, s.cfg.EventQueue)
	subErr := make(chan error, 1)
	subCtx, subCancel := context.WithCancel(sctx)
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		defer func() {
			if r := recover(); r != nil {
				subErr <- &PanicError{Op: "subscribe", Value: r, Stack: debug.Stack()}
			}
		}()
		err := a.Subscribe(subCtx, func(ev Event) {
			select {
			case evCh <- ev:
			case <-subCtx.Done():
			}
		})
		if err == nil {
			err = errors.New("event stream ended")
		}
		subErr <- err
	}()
	defer func() {
		subCancel()
		if ctx.Err() != nil {
			return // stopping: the stream's context is cancelled; Close follows
		}
		t := time.NewTimer(s.cfg.Grace)
		defer t.Stop()
		select {
		case <-subDone:
		case <-t.C:
			s.log.Warn("device event stream ignored its context; abandoned")
		}
	}()

	// The next catch-up is due an interval after the previous one ended
	// (a timer, not a ticker: a slow catch-up never queues another).
	tick := time.NewTimer(s.cfg.CatchupInterval)
	defer tick.Stop()
	batch := make([]Event, 0, s.cfg.BatchMax)
	for {
		select {
		case <-ctx.Done():
			return time.Since(since), ctx.Err()
		case ev := <-evCh:
			batch = append(batch[:0], ev)
		drain:
			for len(batch) < s.cfg.BatchMax {
				select {
				case ev := <-evCh:
					batch = append(batch, ev)
				default:
					break drain
				}
			}
			if err := s.appendEvents(sctx, serial, batch, "live"); err != nil {
				// Not fatal: the cursor has not moved past these events,
				// so the next catch-up reads them again.
				s.log.Warn("device events not buffered; the next catch-up re-reads them", "events", len(batch), "err", err)
			}
		case err := <-subErr:
			if ctx.Err() != nil {
				return time.Since(since), ctx.Err()
			}
			return time.Since(since), fmt.Errorf("event stream: %w", err)
		case <-tick.C:
			if err := s.catchup(sctx, a, serial); err != nil {
				return time.Since(since), fmt.Errorf("catch-up: %w", err)
			}
			tick.Reset(s.cfg.CatchupInterval)
		case <-s.qsig:
			// One command per wake-up, so events and catch-ups interleave.
			req, more := s.dequeue()
			if more {
				s.signal()
			}
			if req == nil {
				continue
			}
			if err := s.runCommand(sctx, a, req); err != nil {
				return time.Since(since), err
			}
		}
	}
}

// closeAdapter closes a under a short timeout (abandoned if it hangs).
func (s *Supervisor) closeAdapter(a Adapter) {
	_, err := call(context.Background(), "close", min(s.cfg.CallTimeout, 2*time.Second), s.cfg.Grace/2,
		func(context.Context) (struct{}, error) { return struct{}{}, a.Close() })
	if err != nil {
		s.log.Debug("device close failed", "err", err)
	}
}

// CursorKey is the buffer state key of a device's catch-up cursor.
func CursorKey(adapterType, serial string) string {
	return "device_cursor:" + adapterType + ":" + serial
}

// catchup reads the device's log from the persisted cursor, appending each
// page's events before persisting the page's cursor.
func (s *Supervisor) catchup(ctx context.Context, a Adapter, serial string) error {
	key := CursorKey(s.dev.Type, serial)
	cur, err := s.store.State(ctx, key)
	if err != nil {
		return &storeError{err}
	}
	_, err = call(ctx, "fetch", s.cfg.FetchTimeout, s.cfg.Grace, func(c context.Context) (struct{}, error) {
		return struct{}{}, a.Fetch(c, Cursor(cur), func(evs []Event, next Cursor) error {
			if err := s.appendEvents(c, serial, evs, "catchup"); err != nil {
				return err
			}
			if next != "" && string(next) != cur {
				if err := s.store.SetState(c, key, string(next)); err != nil {
					return &storeError{err}
				}
				cur = string(next)
			}
			return nil
		})
	})
	return err
}

// appendEvents validates evs, drops those appended recently, and appends
// the rest in batches of BatchMax.
func (s *Supervisor) appendEvents(ctx context.Context, serial string, evs []Event, source string) error {
	now := time.Now().UTC()
	var recs []buffer.Record
	var keys []string
	s.mu.Lock()
	seen := map[string]bool{}
	for _, ev := range evs {
		if ev.Key == "" {
			s.invalidLocked("key", errors.New("key: is required"))
			continue
		}
		if s.recent.has(ev.Key) || seen[ev.Key] {
			continue
		}
		de := protocol.DeviceEvent{
			EventID: EventID(s.dev.Type, serial, ev.Key), AdapterType: s.dev.Type, DeviceSerial: serial,
			Datetime: ev.Time.UTC(), EmployeeNumber: ev.EmployeeNumber, CardNumber: ev.CardNumber, Door: ev.Door,
			MajorCode: ev.MajorCode, MinorCode: ev.MinorCode, VerifyMode: ev.VerifyMode, Direction: ev.Direction,
			ReceivedAt: &now,
		}
		if s.dev.ID > 0 {
			id := s.dev.ID
			de.DeviceID = &id
		}
		if err := protocol.ValidateDeviceEvent(&de, ""); err != nil {
			kind := err.Error()
			var fe *apperr.FieldError
			if errors.As(err, &fe) {
				kind = fe.Field
			}
			s.invalidLocked(kind, err)
			continue
		}
		payload, err := json.Marshal(de)
		if err != nil {
			s.invalidLocked("json", err)
			continue
		}
		seen[ev.Key] = true
		recs = append(recs, buffer.Record{Class: protocol.ClassDevice, Type: "access", EventID: de.EventID, Payload: payload,
			DeviceSerial: serial, AdapterType: s.dev.Type})
		keys = append(keys, ev.Key)
	}
	s.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	// The append is a span; its context rides with the rows to the upload.
	ctx, span := s.tracer.Start(ctx, "devices.append_events", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String(tracing.AttrAdapterType, s.dev.Type), attribute.String(tracing.AttrSource, source),
			attribute.Int(tracing.AttrEvents, len(recs))))
	defer span.End()
	if tp := tracing.Traceparent(ctx); tp != "" {
		for i := range recs {
			recs[i].TraceParent = tp
		}
	}
	for len(recs) > 0 {
		n := min(len(recs), s.cfg.BatchMax)
		out, err := s.store.Append(ctx, recs[:n])
		if err != nil {
			span.SetStatus(codes.Error, "append failed")
			return &storeError{err}
		}
		fresh := 0
		for _, o := range out {
			if !o.Duplicate {
				fresh++
			}
		}
		at := time.Now()
		s.mu.Lock()
		for _, k := range keys[:n] {
			s.recent.add(k)
		}
		if source == "live" {
			s.st.Counts.LiveEvents += int64(fresh)
		} else {
			s.st.Counts.CatchupEvents += int64(fresh)
		}
		s.st.LastEventAt = &at
		s.mu.Unlock()
		s.m.events.WithLabelValues(s.dev.Type, s.dev.Name, source).Add(float64(fresh))
		s.m.lastEvent.WithLabelValues(s.dev.Type, s.dev.Name).Set(float64(at.UnixMilli()) / 1000)
		recs, keys = recs[n:], keys[n:]
	}
	return nil
}

// maxInvalidKinds bounds the kinds of invalid event logged once each.
const maxInvalidKinds = 64

// invalidLocked counts an invalid event and logs the first of its kind.
func (s *Supervisor) invalidLocked(kind string, err error) {
	s.st.Counts.Invalid++
	s.m.invalid.WithLabelValues(s.dev.Type, s.dev.Name).Inc()
	if s.invalidSeen[kind] || len(s.invalidSeen) >= maxInvalidKinds {
		return
	}
	s.invalidSeen[kind] = true
	s.log.Warn("device event refused by validation (logged once per kind; see gateway_device_invalid_events_total)", "kind", kind, "err", err)
}
