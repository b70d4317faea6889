package devices

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel/trace"
)

// ErrUnknownDevice is returned by Manager.Execute for a reference that
// names no configured device.
var ErrUnknownDevice = errors.New("no such device")

// ManagerOptions are what a Manager is given. Registry and Store are
// required.
type ManagerOptions struct {
	// Config is every supervisor's tunables.
	Config   SupervisorConfig
	Registry *Registry
	Store    Store
	// Metrics receives the devices' metrics; nil keeps them unregistered.
	Metrics *Metrics
	// Logger receives JSON logs; nil discards.
	Logger *slog.Logger
	// TracerProvider is every supervisor's (SupervisorOptions); nil: no
	// tracing.
	TracerProvider trace.TracerProvider
}

// Manager holds one supervisor per configured device. Apply replaces the
// device list (gateway.yml at start; later the cloud's pushed list): new
// devices start, removed ones stop, changed ones restart. It is a
// lifecycle.Service: devices applied before Start start with it; Stop stops
// every supervisor.
type Manager struct {
	o   ManagerOptions
	log *slog.Logger

	// applyMu serialises Apply, Start and Stop; mu guards the fields below
	// (held only briefly, so Execute and Statuses never wait for a stop).
	applyMu sync.Mutex
	mu      sync.Mutex
	desired []Config
	sups    map[string]*Supervisor
	started bool
	stopped bool
	runCtx  context.Context
}

// NewManager builds a manager with no devices.
func NewManager(o ManagerOptions) (*Manager, error) {
	if o.Registry == nil || o.Store == nil {
		return nil, errors.New("devices: manager needs a registry and a store")
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{o: o, log: log, sups: map[string]*Supervisor{}}, nil
}

// Validate checks a device list: every device against the registry, and
// names unique. Errors name the field under devices[i].
func (m *Manager) Validate(cfgs []Config) error {
	names := map[string]int{}
	for i, c := range cfgs {
		path := fmt.Sprintf("devices[%d]", i)
		if err := m.o.Registry.validateAt(c, path); err != nil {
			return err
		}
		if j, dup := names[c.Name]; dup {
			return fieldErr(path+".name", fmt.Sprintf("%q is also the name of devices[%d]; names must be unique", c.Name, j))
		}
		names[c.Name] = i
	}
	return nil
}

// Apply makes cfgs the device list: it validates the list (nothing changes
// when it is invalid), stops the supervisors of removed or changed
// devices (within ctx) and, when the manager is started, starts those of
// new and changed ones.
func (m *Manager) Apply(ctx context.Context, cfgs []Config) error {
	if err := m.Validate(cfgs); err != nil {
		return err
	}
	cfgs = append([]Config(nil), cfgs...)
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return errors.New("devices: apply after stop")
	}
	m.desired = cfgs
	started := m.started
	m.mu.Unlock()
	if !started {
		return nil
	}
	return m.reconcile(ctx)
}

// reconcile brings the supervisors in line with m.desired (applyMu held).
func (m *Manager) reconcile(ctx context.Context) error {
	want := map[string]Config{}
	for _, c := range m.desired {
		want[c.Name] = c
	}
	m.mu.Lock()
	var stop []*Supervisor
	for name, s := range m.sups {
		if c, ok := want[name]; !ok || !sameConfig(c, s.dev) {
			stop = append(stop, s)
			delete(m.sups, name)
		}
	}
	m.mu.Unlock()
	err := m.stopAll(ctx, stop)
	for _, s := range stop {
		if c, ok := want[s.dev.Name]; !ok || c.Type != s.dev.Type {
			m.o.Metrics.forget(s.dev.Type, s.dev.Name)
		}
		m.log.Info("device stopped", "device", s.dev.Name, "adapter_type", s.dev.Type)
	}
	for _, c := range m.desired {
		m.mu.Lock()
		_, running := m.sups[c.Name]
		m.mu.Unlock()
		if running {
			continue
		}
		s, e := NewSupervisor(c, SupervisorOptions{Config: m.o.Config, Registry: m.o.Registry, Store: m.o.Store,
			Metrics: m.o.Metrics, Logger: m.log, TracerProvider: m.o.TracerProvider})
		if e == nil {
			e = s.Start(m.runCtx)
		}
		if e != nil {
			err = errors.Join(err, e)
			continue
		}
		m.mu.Lock()
		m.sups[c.Name] = s
		m.mu.Unlock()
		m.log.Info("device started", "device", c.Name, "adapter_type", c.Type, "host", c.Host, "port", c.Port)
	}
	return err
}

// sameConfig reports whether two configurations of a device are equal
// (settings compared as compacted JSON).
func sameConfig(a, b Config) bool {
	if a.ID != b.ID || a.Name != b.Name || a.Type != b.Type || a.Host != b.Host || a.Port != b.Port || a.Serial != b.Serial {
		return false
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a.Settings) != nil || json.Compact(&cb, b.Settings) != nil {
		return bytes.Equal(a.Settings, b.Settings)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// stopAll stops ss concurrently within ctx.
func (m *Manager) stopAll(ctx context.Context, ss []*Supervisor) error {
	errs := make([]error, len(ss))
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Stop(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Start starts the supervisors of the devices applied so far.
func (m *Manager) Start(ctx context.Context) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	if m.started || m.stopped {
		m.mu.Unlock()
		return errors.New("devices: manager started twice or after stop")
	}
	m.started = true
	m.runCtx = context.WithoutCancel(ctx)
	m.mu.Unlock()
	return m.reconcile(ctx)
}

// Stop stops every supervisor within ctx.
func (m *Manager) Stop(ctx context.Context) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return nil
	}
	m.stopped = true
	var all []*Supervisor
	for _, s := range m.sups {
		all = append(all, s)
	}
	m.sups = map[string]*Supervisor{}
	m.mu.Unlock()
	return m.stopAll(ctx, all)
}

// Statuses returns every device's status, sorted by name.
func (m *Manager) Statuses() []Status {
	m.mu.Lock()
	out := make([]Status, 0, len(m.sups))
	for _, s := range m.sups {
		out = append(out, s.Status())
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Supervisor returns the supervisor of the device ref names: its cloud id
// (a decimal number), its serial (reported or configured) or its name, in
// that order of precedence.
func (m *Manager) Supervisor(ref string) (*Supervisor, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil && id > 0 {
		for _, s := range m.sups {
			if s.dev.ID == id {
				return s, true
			}
		}
	}
	if ref == "" {
		return nil, false
	}
	for _, s := range m.sups {
		if s.dev.Serial == ref || s.Status().Serial == ref {
			return s, true
		}
	}
	if s, ok := m.sups[ref]; ok {
		return s, true
	}
	return nil, false
}

// Execute runs cmd on the device ref names (see Supervisor) and returns its
// answer; see Supervisor.Execute for the errors.
func (m *Manager) Execute(ctx context.Context, ref string, cmd Command) (Result, error) {
	s, ok := m.Supervisor(ref)
	if !ok {
		return Result{}, fmt.Errorf("device %q: %w", ref, ErrUnknownDevice)
	}
	return s.Execute(ctx, cmd)
}
