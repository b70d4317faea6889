package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// The scripted adapter stands in for hardware in the supervisor's tests: a
// device with a stored log (cursor = index into it), a live stream, and
// faults to inject (hang ignoring the context, panic, refuse credentials
// with a lockout, drop the stream, fail to connect).

const scriptedType = "scripted"

// scriptedSchema is the JSON Schema of the scripted adapter's settings.
const scriptedSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "comm_key": {"type": "integer", "minimum": 0, "maximum": 999999},
    "password": {"type": "string"}
  },
  "additionalProperties": false
}`

// device is one scripted device, shared by every adapter built for it.
type device struct {
	serial   string
	pageSize int

	mu  sync.Mutex
	log []Event
	// sub receives live events while a Subscribe runs.
	sub chan Event
	// drop ends the running Subscribe with an error.
	drop chan struct{}
	// faults
	hangConnect   bool
	hangExecute   bool
	panicConnect  int // panics left
	panicSubscrib int // panics left
	connectErr    error
	authErr       *AuthError
	execDelay     time.Duration
	// fetchSince records the cursor of every Fetch.
	fetchSince []Cursor

	release chan struct{} // closed at test end: hung calls return

	connects   atomic.Int64
	executing  atomic.Int32
	maxExec    atomic.Int32
	executions atomic.Int64
}

func newDevice(t *testing.T, serial string) *device {
	d := &device{serial: serial, pageSize: 7, release: make(chan struct{})}
	t.Cleanup(func() { close(d.release) })
	return d
}

// emit stores an event with the next key and, when subscribed, sends it
// live; it returns the event's key.
func (d *device) emit() string {
	d.mu.Lock()
	key := strconv.Itoa(len(d.log))
	ev := Event{Key: key, Time: time.Now().UTC().Truncate(time.Millisecond), EmployeeNumber: "E" + key, MajorCode: 5, MinorCode: 75}
	d.log = append(d.log, ev)
	sub := d.sub
	d.mu.Unlock()
	if sub != nil {
		select {
		case sub <- ev:
		default:
		}
	}
	return key
}

func (d *device) set(f func(d *device)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

// dropStream ends the running Subscribe (waiting, within reason, for one
// to run: a session is online a moment before its stream starts).
func (d *device) dropStream() {
	for range 1000 {
		d.mu.Lock()
		if d.drop != nil {
			close(d.drop)
			d.drop = nil
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

func (d *device) fetches() []Cursor {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Cursor(nil), d.fetchSince...)
}

// scripted is an Adapter over a device.
type scripted struct{ d *device }

func (a *scripted) Connect(ctx context.Context) error {
	d := a.d
	d.connects.Add(1)
	d.mu.Lock()
	hang, ae, cerr := d.hangConnect, d.authErr, d.connectErr
	panics := d.panicConnect > 0
	if panics {
		d.panicConnect--
	}
	d.mu.Unlock()
	switch {
	case panics:
		panic("scripted connect panic")
	case hang:
		<-d.release // ignores ctx
		return errors.New("released")
	case ae != nil:
		return ae
	case cerr != nil:
		return cerr
	}
	return nil
}

func (a *scripted) Close() error { return nil }

func (a *scripted) Info(ctx context.Context) (Info, error) {
	return Info{Serial: a.d.serial, Model: "scripted"}, nil
}

func (a *scripted) Execute(ctx context.Context, cmd Command) (Result, error) {
	d := a.d
	n := d.executing.Add(1)
	defer d.executing.Add(-1)
	for {
		m := d.maxExec.Load()
		if n <= m || d.maxExec.CompareAndSwap(m, n) {
			break
		}
	}
	d.executions.Add(1)
	d.mu.Lock()
	hang, delay := d.hangExecute, d.execDelay
	d.mu.Unlock()
	if hang {
		<-d.release
		return Result{}, errors.New("released")
	}
	if cmd.Type == "unsupported" {
		return Result{}, fmt.Errorf("scripted: %w", ErrUnsupported)
	}
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	return Result{Message: "OK " + cmd.Type, Data: json.RawMessage(`{"door":` + strconv.Itoa(max(cmd.Door, 1)) + `}`)}, nil
}

func (a *scripted) Fetch(ctx context.Context, since Cursor, page func([]Event, Cursor) error) error {
	d := a.d
	i := 0
	if since != "" {
		n, err := strconv.Atoi(string(since))
		if err != nil {
			return &ProtocolError{Op: "fetch", Err: err}
		}
		i = n
	}
	d.mu.Lock()
	d.fetchSince = append(d.fetchSince, since)
	d.mu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d.mu.Lock()
		end := min(i+d.pageSize, len(d.log))
		evs := append([]Event(nil), d.log[min(i, end):end]...)
		d.mu.Unlock()
		if len(evs) == 0 {
			return nil
		}
		if err := page(evs, Cursor(strconv.Itoa(end))); err != nil {
			return err
		}
		i = end
	}
}

func (a *scripted) Subscribe(ctx context.Context, out func(Event)) error {
	d := a.d
	d.mu.Lock()
	if d.panicSubscrib > 0 {
		d.panicSubscrib--
		d.mu.Unlock()
		panic("scripted subscribe panic")
	}
	sub, drop := make(chan Event, 1024), make(chan struct{})
	d.sub, d.drop = sub, drop
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if d.sub == sub {
			d.sub = nil
		}
		d.mu.Unlock()
	}()
	for {
		select {
		case ev := <-sub:
			out(ev)
		case <-drop:
			return errors.New("scripted: stream dropped")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fleet maps device names to scripted devices, for the factory.
type fleet struct {
	mu      sync.Mutex
	devices map[string]*device
}

func (f *fleet) factory() Factory {
	return Factory{Type: scriptedType, Vendor: "test", Version: "1", Schema: json.RawMessage(scriptedSchema),
		New: func(cfg Config) (Adapter, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			d, ok := f.devices[cfg.Name]
			if !ok {
				return nil, fmt.Errorf("no scripted device %q", cfg.Name)
			}
			return &scripted{d: d}, nil
		}}
}

func (f *fleet) add(t *testing.T, name string) *device {
	d := newDevice(t, "SN-"+name)
	f.mu.Lock()
	if f.devices == nil {
		f.devices = map[string]*device{}
	}
	f.devices[name] = d
	f.mu.Unlock()
	return d
}

func cfgOf(name string) Config {
	return Config{Name: name, Type: scriptedType, Host: "127.0.0.1", Port: 4370}
}

// fastConfig is supervisor tunables for tests: short timeouts and waits.
func fastConfig() SupervisorConfig {
	return SupervisorConfig{
		CallTimeout: 300 * time.Millisecond, FetchTimeout: 2 * time.Second, Grace: 100 * time.Millisecond,
		CatchupInterval: 100 * time.Millisecond, BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		HealthyAfter: time.Minute, IsolateAfter: 1000, IsolateFor: time.Minute, CommandQueue: 64,
	}
}

func openBuffer(t *testing.T, path string) *buffer.Buffer {
	t.Helper()
	b, err := buffer.Open(context.Background(), buffer.Options{Config: buffer.Config{Path: path, MaxBytes: 1 << 30},
		Logger: logtest.New(t), FSUsage: func(string) (float64, error) { return 0, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tempBuffer(t *testing.T) *recStore {
	b := openBuffer(t, filepath.Join(t.TempDir(), "buffer.sqlite"))
	t.Cleanup(func() { b.Close() })
	return &recStore{Buffer: b, ids: map[string]time.Time{}}
}

// recStore is the real buffer, noting when each event id was first
// buffered (HasEvent sees agent events only).
type recStore struct {
	*buffer.Buffer
	mu  sync.Mutex
	ids map[string]time.Time
	// records counts every record given to Append (duplicates included).
	records int
}

func (r *recStore) Append(ctx context.Context, recs []buffer.Record) ([]buffer.Appended, error) {
	out, err := r.Buffer.Append(ctx, recs)
	if err == nil {
		r.mu.Lock()
		r.records += len(recs)
		for i, o := range out {
			if _, ok := r.ids[recs[i].EventID]; !ok && !o.Duplicate {
				r.ids[recs[i].EventID] = time.Now()
			}
		}
		r.mu.Unlock()
	}
	return out, err
}

// has reports whether the event id was buffered.
func (r *recStore) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.ids[id]
	return ok
}

func newManager(t *testing.T, f *fleet, store Store, cfg SupervisorConfig) *Manager {
	t.Helper()
	reg, err := NewRegistry(f.factory())
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ManagerOptions{Config: cfg, Registry: reg, Store: store, Logger: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return m
}

func apply(t *testing.T, m *Manager, cfgs ...Config) {
	t.Helper()
	if err := m.Apply(context.Background(), cfgs); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or the (generous) deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stateOf(m *Manager, name string) State {
	s, ok := m.Supervisor(name)
	if !ok {
		return ""
	}
	return s.Status().State
}

// deviceRows reads back every device event in the buffer: event id →
// occurrences, and the decoded events.
func deviceRows(t *testing.T, b *buffer.Buffer) (map[string]int, []protocol.DeviceEvent) {
	t.Helper()
	counts := map[string]int{}
	var evs []protocol.DeviceEvent
	for {
		bt, err := b.Claim(context.Background(), buffer.StreamDevice, 10000, 1<<30, false)
		if err != nil {
			t.Fatal(err)
		}
		if bt == nil {
			return counts, evs
		}
		for _, e := range bt.Events {
			counts[e.EventID]++
			var de protocol.DeviceEvent
			if err := json.Unmarshal(e.Payload, &de); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, de)
		}
	}
}
