package devices

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

func TestRegistry(t *testing.T) {
	f := &fleet{}
	if _, err := NewRegistry(f.factory(), f.factory()); err == nil {
		t.Fatal("duplicate type accepted")
	}
	bad := f.factory()
	bad.Type, bad.Schema = "bad", []byte(`{"type": 12}`)
	if _, err := NewRegistry(bad); err == nil {
		t.Fatal("a schema that does not compile was accepted")
	}
	reg, err := NewRegistry(f.factory())
	if err != nil {
		t.Fatal(err)
	}
	ok := cfgOf("door")
	ok.Settings = []byte(`{"comm_key": 1234}`)
	for _, tc := range []struct {
		name  string
		mod   func(c *Config)
		field string
	}{
		{"valid", func(c *Config) {}, ""},
		{"no settings", func(c *Config) { c.Settings = nil }, ""},
		{"no name", func(c *Config) { c.Name = "" }, "name"},
		{"unknown type", func(c *Config) { c.Type = "acme" }, "adapter_type"},
		{"no host", func(c *Config) { c.Host = "" }, "host"},
		{"bad port", func(c *Config) { c.Port = 70000 }, "port"},
		{"comm key range", func(c *Config) { c.Settings = []byte(`{"comm_key": 1000000}`) }, "config.comm_key"},
		{"comm key type", func(c *Config) { c.Settings = []byte(`{"comm_key": "x"}`) }, "config.comm_key"},
		{"unknown setting", func(c *Config) { c.Settings = []byte(`{"colour": "red"}`) }, "config"},
		{"settings not JSON", func(c *Config) { c.Settings = []byte(`{`) }, "config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := reg.Validate(c)
			var fe *apperr.FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.field != "" && !errors.As(err, &fe):
				t.Fatalf("want a FieldError naming %s, got %v", tc.field, err)
			case tc.field != "" && fe.Field != tc.field:
				t.Fatalf("field %q, want %q (%v)", fe.Field, tc.field, err)
			}
		})
	}
	m, err := NewManager(ManagerOptions{Registry: reg, Store: tempBuffer(t)})
	if err != nil {
		t.Fatal(err)
	}
	c2 := ok
	c2.Name, c2.Settings = "c", []byte(`{"comm_key": -1}`)
	err = m.Apply(context.Background(), []Config{ok, cfgOf("b"), c2})
	if err == nil || !strings.HasPrefix(err.Error(), "devices[2].config.comm_key: ") {
		t.Fatalf("got %v, want an error naming devices[2].config.comm_key", err)
	}
	err = m.Apply(context.Background(), []Config{ok, cfgOf("b"), ok})
	if err == nil || !strings.HasPrefix(err.Error(), "devices[2].name: ") {
		t.Fatalf("got %v, want an error naming devices[2].name", err)
	}
}

// TestFailureIsolation: one device hangs ignoring its context and one is
// locked out, while three others keep delivering events on time.
func TestFailureIsolation(t *testing.T) {
	b := tempBuffer(t)
	f := &fleet{}
	hung := f.add(t, "hung")
	hung.hangConnect = true
	locked := f.add(t, "locked")
	locked.authErr = &AuthError{Reason: "locked", RetryAfter: time.Hour, AttemptsLeft: 0}
	var good []*device
	cfgs := []Config{cfgOf("hung"), cfgOf("locked")}
	for i := range 3 {
		name := "good" + strconv.Itoa(i)
		good = append(good, f.add(t, name))
		cfgs = append(cfgs, cfgOf(name))
	}
	m := newManager(t, f, b, fastConfig())
	apply(t, m, cfgs...)
	for i := range 3 {
		eventually(t, 10*time.Second, "good device online", func() bool { return stateOf(m, "good"+strconv.Itoa(i)) == StateOnline })
	}
	// Let the hung device pile up abandoned calls while events flow.
	worst := time.Duration(0)
	for round := range 20 {
		for i, d := range good {
			key := d.emit()
			id := EventID(scriptedType, d.serial, key)
			began := time.Now()
			eventually(t, 5*time.Second, "event of good"+strconv.Itoa(i)+" round "+strconv.Itoa(round)+" buffered", func() bool {
				return b.has(id)
			})
			worst = max(worst, time.Since(began))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Generous bound: live events are buffered as they come (one fsync),
	// whatever the other devices do.
	if worst > 2*time.Second {
		t.Errorf("worst live event latency %s", worst)
	}
	if n := locked.connects.Load(); n != 1 {
		t.Errorf("locked device: %d Connect attempts, want exactly 1", n)
	}
	if st := stateOf(m, "locked"); st != StateAuthFailed {
		t.Errorf("locked device state %s", st)
	}
	if st := stateOf(m, "hung"); st == StateOnline {
		t.Errorf("hung device state %s", st)
	}
	s, _ := m.Supervisor("hung")
	if st := s.Status(); st.LastErrorClass != FailureTimeout {
		t.Errorf("hung device: last error %q (%s)", st.LastError, st.LastErrorClass)
	}
	if _, err := m.Execute(context.Background(), "locked", Command{Type: CmdOpenDoor}); !errors.Is(err, ErrOffline) {
		t.Errorf("command to a locked-out device: %v", err)
	}
}

// TestAuthFailureStopsRetries: a refused credential without a lockout
// stops retries until the configuration changes; with one, exactly one
// more attempt after it.
func TestAuthFailureStopsRetries(t *testing.T) {
	b := tempBuffer(t)
	f := &fleet{}
	wrong := f.add(t, "wrong")
	wrong.authErr = &AuthError{Reason: "ACK_UNAUTH", AttemptsLeft: -1}
	lock := f.add(t, "lock")
	lock.authErr = &AuthError{Reason: "lock", RetryAfter: 2 * time.Second, AttemptsLeft: 0}
	m := newManager(t, f, b, fastConfig())
	apply(t, m, cfgOf("wrong"), cfgOf("lock"))
	eventually(t, 5*time.Second, "auth_failed", func() bool {
		return stateOf(m, "wrong") == StateAuthFailed && stateOf(m, "lock") == StateAuthFailed
	})
	s, _ := m.Supervisor("lock")
	if st := s.Status(); st.RetryAt == nil || time.Until(*st.RetryAt) <= 0 {
		t.Errorf("lockout: retry_at %v", st.RetryAt)
	}
	// Must not happen: a retry before the lockout ends (500 ms is well
	// inside the 2 s lockout).
	time.Sleep(500 * time.Millisecond)
	if n := lock.connects.Load(); n != 1 {
		t.Fatalf("during the lockout: %d Connect attempts", n)
	}
	eventually(t, 5*time.Second, "one attempt after the lockout", func() bool { return lock.connects.Load() == 2 })
	if n := wrong.connects.Load(); n != 1 {
		t.Fatalf("wrong password: %d Connect attempts, want 1", n)
	}
	// The configuration changes (a new password): one new attempt, which
	// succeeds.
	wrong.set(func(d *device) { d.authErr = nil })
	changed := cfgOf("wrong")
	changed.Settings = []byte(`{"password": "right"}`)
	apply(t, m, changed, cfgOf("lock"))
	eventually(t, 5*time.Second, "online after the change", func() bool { return stateOf(m, "wrong") == StateOnline })
	if n := wrong.connects.Load(); n != 2 {
		t.Fatalf("after the change: %d Connect attempts, want 2", n)
	}
}

// TestPanicRecovered: panics in Connect and in the event stream fail that
// device alone; it reconnects and delivers.
func TestPanicRecovered(t *testing.T) {
	b := tempBuffer(t)
	f := &fleet{}
	d := f.add(t, "p")
	d.panicConnect, d.panicSubscrib = 2, 1
	other := f.add(t, "other")
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	r, _ := NewRegistry(f.factory())
	m, err := NewManager(ManagerOptions{Config: fastConfig(), Registry: r, Store: b, Metrics: metrics, Logger: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, m, cfgOf("p"), cfgOf("other"))
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	eventually(t, 10*time.Second, "panicking device online", func() bool {
		s, _ := m.Supervisor("p")
		st := s.Status()
		return st.State == StateOnline && st.Counts.Panics == 3
	})
	key := d.emit()
	eventually(t, 5*time.Second, "event after panics", func() bool {
		return b.has(EventID(scriptedType, d.serial, key))
	})
	if got := value(t, metrics.failures.WithLabelValues(scriptedType, "p", FailurePanic)); got != 3 {
		t.Errorf("panic failures metric %v, want 3", got)
	}
	if got := value(t, metrics.connected.WithLabelValues(scriptedType, "p")); got != 1 {
		t.Errorf("connected metric %v", got)
	}
	if other.connects.Load() != 1 {
		t.Errorf("other device reconnected %d times", other.connects.Load())
	}
}

// supervisorFor builds a bare supervisor with a retry recorder.
func supervisorFor(t *testing.T, f *fleet, name string, cfg SupervisorConfig, b Store) (*Supervisor, func() []string) {
	t.Helper()
	r, err := NewRegistry(f.factory())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSupervisor(cfgOf(name), SupervisorOptions{Config: cfg, Registry: r, Store: b, Logger: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waits []string
	s.onRetry = func(kind string, d time.Duration) {
		mu.Lock()
		waits = append(waits, kind+" "+d.String())
		mu.Unlock()
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), waits...)
	}
}

func TestBackoffGrowsAndResets(t *testing.T) {
	f := &fleet{}
	d := f.add(t, "flaky")
	d.connectErr = errors.New("connection refused")
	cfg := fastConfig()
	cfg.BackoffInitial, cfg.BackoffMax, cfg.HealthyAfter = 5*time.Millisecond, 40*time.Millisecond, 150*time.Millisecond
	s, waits := supervisorFor(t, f, "flaky", cfg, tempBuffer(t))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"backoff 5ms", "backoff 10ms", "backoff 20ms", "backoff 40ms", "backoff 40ms"}
	eventually(t, 10*time.Second, "five retries", func() bool { return len(waits()) >= 5 })
	if got := waits()[:5]; !equal(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
	if st := s.Status(); st.LastErrorClass != FailureNetwork || st.ConsecutiveFailures < 5 {
		t.Fatalf("status %+v", st)
	}
	d.set(func(d *device) { d.connectErr = nil })
	eventually(t, 5*time.Second, "online", func() bool { return s.Status().State == StateOnline })
	n := len(waits())
	time.Sleep(cfg.HealthyAfter + 50*time.Millisecond) // a healthy session
	d.set(func(d *device) { d.connectErr = errors.New("connection refused") })
	d.dropStream()
	eventually(t, 5*time.Second, "retry after the drop", func() bool { return len(waits()) > n })
	if got := waits()[n]; got != "backoff 5ms" {
		t.Fatalf("after a healthy session the first wait is %q, want backoff 5ms", got)
	}
	if s.Status().Counts.Connects != 1 {
		t.Fatalf("connects %d", s.Status().Counts.Connects)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCircuitOpens(t *testing.T) {
	f := &fleet{}
	d := f.add(t, "broken")
	d.connectErr = errors.New("no route to host")
	cfg := fastConfig()
	cfg.BackoffInitial, cfg.BackoffMax, cfg.IsolateAfter, cfg.IsolateFor = time.Millisecond, 2*time.Millisecond, 3, 600*time.Millisecond
	s, waits := supervisorFor(t, f, "broken", cfg, tempBuffer(t))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "isolated", func() bool { return s.Status().State == StateIsolated })
	if n := d.connects.Load(); n != 3 {
		t.Fatalf("%d attempts before isolation, want 3", n)
	}
	if st := s.Status(); st.RetryAt == nil {
		t.Fatal("isolated without retry_at")
	}
	// Must not happen: an attempt during the cool-down (300 ms of 600).
	time.Sleep(300 * time.Millisecond)
	if n := d.connects.Load(); n != 3 {
		t.Fatalf("%d attempts during the cool-down", n)
	}
	// Half-open: one attempt after the cool-down, which fails and isolates
	// again at once.
	eventually(t, 5*time.Second, "half-open attempt", func() bool { return d.connects.Load() == 4 })
	eventually(t, 5*time.Second, "isolated again", func() bool {
		w := waits()
		return len(w) >= 4 && w[len(w)-1] == "isolate 600ms"
	})
	if w := waits(); !equal(w[:4], []string{"backoff 1ms", "backoff 2ms", "isolate 600ms", "isolate 600ms"}) {
		t.Fatalf("waits %v", w)
	}
}

// TestCatchupAfterReconnect: events stored while the device was
// unreachable are read back after the reconnect: no gap and no duplicate.
func TestCatchupAfterReconnect(t *testing.T) {
	b := tempBuffer(t)
	f := &fleet{}
	d := f.add(t, "door")
	for range 15 { // stored before the gateway ever connected
		d.emit()
	}
	m := newManager(t, f, b, fastConfig())
	apply(t, m, cfgOf("door"))
	eventually(t, 5*time.Second, "online", func() bool { return stateOf(m, "door") == StateOnline })
	for range 20 {
		d.emit()
		time.Sleep(3 * time.Millisecond)
	}
	d.set(func(d *device) { d.connectErr = errors.New("unreachable") })
	d.dropStream()
	eventually(t, 5*time.Second, "offline", func() bool { return stateOf(m, "door") != StateOnline })
	for range 25 { // stored while unreachable
		d.emit()
	}
	d.set(func(d *device) { d.connectErr = nil })
	eventually(t, 5*time.Second, "online again", func() bool { return stateOf(m, "door") == StateOnline })
	for range 20 {
		d.emit()
		time.Sleep(3 * time.Millisecond)
	}
	total := 80
	want := map[string]bool{}
	for i := range total {
		want[EventID(scriptedType, d.serial, strconv.Itoa(i))] = true
	}
	eventually(t, 10*time.Second, "every event buffered", func() bool {
		for id := range want {
			if !b.has(id) {
				return false
			}
		}
		return true
	})
	counts, evs := deviceRows(t, b.Buffer)
	if len(counts) != total || len(evs) != total {
		t.Fatalf("%d distinct ids in %d rows, want %d each", len(counts), len(evs), total)
	}
	for _, e := range evs {
		if !want[e.EventID] || counts[e.EventID] != 1 || e.DeviceSerial != d.serial || e.AdapterType != scriptedType || e.Seq != 0 {
			t.Fatalf("bad row %+v (count %d)", e, counts[e.EventID])
		}
	}
	// The recent keys spare the buffer the re-reads: each event was given
	// to Append once.
	b.mu.Lock()
	records := b.records
	b.mu.Unlock()
	if records != total {
		t.Errorf("%d records appended for %d events", records, total)
	}
	s, _ := m.Supervisor("door")
	st := s.Status()
	if st.Counts.LiveEvents == 0 || st.Counts.CatchupEvents < 40 || st.Counts.Reconnects != 1 {
		t.Fatalf("counts %+v", st.Counts)
	}
}

// TestCursorPersistedAcrossRestart: a new manager on the same buffer file
// resumes from the cursor the old one stored.
func TestCursorPersistedAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	f := &fleet{}
	d := f.add(t, "door")
	for range 20 {
		d.emit()
	}
	run := func() {
		b := openBuffer(t, path)
		defer b.Close()
		r, _ := NewRegistry(f.factory())
		m, err := NewManager(ManagerOptions{Config: fastConfig(), Registry: r, Store: b, Logger: logtest.New(t)})
		if err != nil {
			t.Fatal(err)
		}
		apply(t, m, cfgOf("door"))
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "online", func() bool { return stateOf(m, "door") == StateOnline })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if v, _ := b.State(ctx, CursorKey(scriptedType, d.serial)); v != "20" {
			t.Fatalf("stored cursor %q, want 20", v)
		}
	}
	run()
	n := len(d.fetches())
	if d.fetches()[0] != "" {
		t.Fatalf("first fetch since %q", d.fetches()[0])
	}
	run()
	if got := d.fetches()[n]; got != "20" {
		t.Fatalf("after restart the first fetch is since %q, want 20", got)
	}
	b := openBuffer(t, path)
	defer b.Close()
	counts, _ := deviceRows(t, b)
	if len(counts) != 20 {
		t.Fatalf("%d events buffered, want 20", len(counts))
	}
}

func TestCommandsSerialised(t *testing.T) {
	b := tempBuffer(t)
	f := &fleet{}
	d := f.add(t, "door")
	d.execDelay = 5 * time.Millisecond
	m := newManager(t, f, b, fastConfig())
	c := cfgOf("door")
	c.ID = 42
	apply(t, m, c)
	eventually(t, 5*time.Second, "online", func() bool { return stateOf(m, "door") == StateOnline })
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		ref := []string{"door", "42", d.serial}[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := m.Execute(ctx, ref, Command{Type: CmdOpenDoor, Door: 2})
			if err == nil && (res.Message != "OK open_door" || string(res.Data) != `{"door":2}`) {
				err = errors.New("bad result " + res.Message)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := d.maxExec.Load(); n != 1 {
		t.Fatalf("%d commands ran at once on one adapter", n)
	}
	if n := d.executions.Load(); n != 40 {
		t.Fatalf("%d executions, want 40", n)
	}
	if _, err := m.Execute(context.Background(), "door", Command{Type: "unsupported"}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unsupported: %v", err)
	}
	if _, err := m.Execute(context.Background(), "nope", Command{Type: CmdOpenDoor}); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("unknown device: %v", err)
	}
	if stateOf(m, "door") != StateOnline {
		t.Fatal("an unsupported command ended the session")
	}
}

func TestCommandsFailWhenOffline(t *testing.T) {
	b := tempBuffer(t)
	f := &fleet{}
	d := f.add(t, "door")
	d.connectErr = errors.New("unreachable")
	cfg := fastConfig()
	cfg.CommandQueue = 1
	m := newManager(t, f, b, cfg)
	apply(t, m, cfgOf("door"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := m.Execute(ctx, "door", Command{Type: CmdOpenDoor})
	if !errors.Is(err, ErrOffline) {
		t.Fatalf("offline device: %v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	// A full queue fails at once.
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _ = m.Execute(ctx, "door", Command{Type: CmdOpenDoor})
	}()
	s, _ := m.Supervisor("door")
	eventually(t, 5*time.Second, "queued", func() bool { return s.waiting() == 1 })
	if _, err := m.Execute(context.Background(), "door", Command{Type: CmdOpenDoor}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("full queue: %v", err)
	}
	<-done
	// Once the device is back, commands run.
	d.set(func(d *device) { d.connectErr = nil })
	eventually(t, 5*time.Second, "online", func() bool { return stateOf(m, "door") == StateOnline })
	if _, err := m.Execute(context.Background(), "door", Command{Type: CmdReboot}); err != nil {
		t.Fatal(err)
	}
}

// TestHungCommand: a command that ignores its context is abandoned after
// the call timeout, and the session is rebuilt.
func TestHungCommand(t *testing.T) {
	b := tempBuffer(t)
	f := &fleet{}
	d := f.add(t, "door")
	d.hangExecute = true
	m := newManager(t, f, b, fastConfig())
	apply(t, m, cfgOf("door"))
	eventually(t, 5*time.Second, "online", func() bool { return stateOf(m, "door") == StateOnline })
	began := time.Now()
	_, err := m.Execute(context.Background(), "door", Command{Type: CmdOpenDoor})
	var te *TimeoutError
	if !errors.As(err, &te) || !te.Abandoned {
		t.Fatalf("hung command: %v", err)
	}
	if el := time.Since(began); el > 5*time.Second {
		t.Fatalf("took %s", el)
	}
	d.set(func(d *device) { d.hangExecute = false })
	eventually(t, 5*time.Second, "reconnected", func() bool {
		s, _ := m.Supervisor("door")
		return s.Status().Counts.Reconnects == 1 && s.Status().State == StateOnline
	})
}

func TestApply(t *testing.T) {
	b := tempBuffer(t)
	f := &fleet{}
	da, db := f.add(t, "a"), f.add(t, "b")
	m := newManager(t, f, b, fastConfig())
	apply(t, m, cfgOf("a"), cfgOf("b"))
	eventually(t, 5*time.Second, "both online", func() bool { return stateOf(m, "a") == StateOnline && stateOf(m, "b") == StateOnline })
	// Unchanged a stays; changed b restarts.
	b2 := cfgOf("b")
	b2.Port = 4371
	apply(t, m, cfgOf("a"), b2)
	eventually(t, 5*time.Second, "b restarted", func() bool { return db.connects.Load() == 2 && stateOf(m, "b") == StateOnline })
	if da.connects.Load() != 1 {
		t.Fatalf("unchanged device restarted")
	}
	s, _ := m.Supervisor("b")
	if s.Config().Port != 4371 {
		t.Fatalf("port %d", s.Config().Port)
	}
	// Removed b stops; an added c starts.
	f.add(t, "c")
	apply(t, m, cfgOf("a"), cfgOf("c"))
	eventually(t, 5*time.Second, "c online", func() bool { return stateOf(m, "c") == StateOnline })
	sts := m.Statuses()
	if len(sts) != 2 || sts[0].Name != "a" || sts[1].Name != "c" {
		t.Fatalf("statuses %+v", sts)
	}
	if _, err := s.Execute(context.Background(), Command{Type: CmdOpenDoor}); !errors.Is(err, ErrStopped) {
		t.Fatalf("command to a removed device: %v", err)
	}
	// An invalid list changes nothing.
	bad := cfgOf("d")
	bad.Port = -1
	if err := m.Apply(context.Background(), []Config{cfgOf("a"), bad}); err == nil {
		t.Fatal("invalid list applied")
	}
	if len(m.Statuses()) != 2 {
		t.Fatal("an invalid list changed the devices")
	}
	apply(t, m)
	if len(m.Statuses()) != 0 {
		t.Fatal("empty list left devices")
	}
}

// TestInvalidEvents: an invalid event is counted and skipped; the others
// are buffered.
func TestInvalidEvents(t *testing.T) {
	b := tempBuffer(t)
	f := &fleet{}
	d := f.add(t, "door")
	d.log = append(d.log,
		Event{Key: "0", Time: time.Now(), EmployeeNumber: "ok"},
		Event{Key: "1", Time: time.Now(), EmployeeNumber: "bad\x00"},
		Event{Key: "2"}, // no time
		Event{Key: "", Time: time.Now()},
		Event{Key: "4", Time: time.Now(), EmployeeNumber: "ok"},
	)
	m := newManager(t, f, b, fastConfig())
	apply(t, m, cfgOf("door"))
	eventually(t, 5*time.Second, "online", func() bool { return stateOf(m, "door") == StateOnline })
	s, _ := m.Supervisor("door")
	if st := s.Status(); st.Counts.Invalid < 3 || st.Counts.CatchupEvents != 2 {
		t.Fatalf("counts %+v", st.Counts)
	}
	counts, _ := deviceRows(t, b.Buffer)
	if len(counts) != 2 {
		t.Fatalf("%d rows, want 2", len(counts))
	}
}

func TestManagerLifecycle(t *testing.T) {
	lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
		f := &fleet{}
		f.add(t, "a").hangConnect = true
		f.add(t, "b")
		r, _ := NewRegistry(f.factory())
		m, err := NewManager(ManagerOptions{Config: fastConfig(), Registry: r, Store: tempBuffer(t), Logger: logtest.New(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Apply(context.Background(), []Config{cfgOf("a"), cfgOf("b")}); err != nil {
			t.Fatal(err)
		}
		return m
	})
}

// value reads a counter's or a gauge's value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestRebootGrace: after a reboot the device answered, its reconnect
// failures are expected — the circuit breaker never opens for them (the
// same failures without a reboot isolate it: TestCircuitOpens) — and it is
// back online as soon as it answers.
func TestRebootGrace(t *testing.T) {
	f := &fleet{}
	d := f.add(t, "door")
	cfg := fastConfig()
	cfg.BackoffInitial, cfg.BackoffMax, cfg.IsolateAfter, cfg.IsolateFor = time.Millisecond, 2*time.Millisecond, 3, time.Minute
	s, waits := supervisorFor(t, f, "door", cfg, tempBuffer(t))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "online", func() bool { return s.Status().State == StateOnline })
	if _, err := s.Execute(context.Background(), Command{Type: CmdReboot}); err != nil {
		t.Fatal(err)
	}
	d.set(func(d *device) { d.connectErr = errors.New("connection refused (rebooting)") })
	d.dropStream()
	eventually(t, 10*time.Second, "ten failed reconnects", func() bool { return d.connects.Load() >= 11 })
	for _, w := range waits() {
		if strings.HasPrefix(w, "isolate") {
			t.Fatalf("isolated during the reboot's grace: %v", waits())
		}
	}
	d.set(func(d *device) { d.connectErr = nil })
	eventually(t, 5*time.Second, "back online", func() bool { return s.Status().State == StateOnline })
}
