// Package gateway assembles the Agent Gateway: buffer, collector (HTTP and
// gRPC intake), agent enrolment, the gateway's own enrolment (provisioning)
// and, once it has its credentials, the uplink and the control plane
// (control client, executor, agent control; see control.go), and health.
//
// New builds every part without starting any; Start starts them as a
// lifecycle.Group in dependency order — the buffer, the configured
// enrolment verifier, the gateway's enrolment (which starts the
// cloud-facing parts once it has credentials, see enrolment.go), the intake
// last — and Stop stops them in reverse: intake first, then the control
// client, the uplink and the executor, then the buffer, so no acknowledged
// event, upload result or command outcome is left half-recorded.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/edge/agentauth"
	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
	"github.com/staffcontrol/staffcontrol/internal/edge/collector"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/health"
	"github.com/staffcontrol/staffcontrol/internal/edge/uplink"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/logscrub"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// Deps are what a gateway is given besides its configuration.
type Deps struct {
	// Logger receives JSON logs; nil discards.
	Logger *slog.Logger
	// Version is the gateway's version (heartbeats, provisioning, health).
	Version string
	// ExtraHandlers adds executor handlers (see HandlerFactory); nil adds
	// none.
	ExtraHandlers HandlerFactory
	// Timeouts are the servers' timeouts; nil means DefaultServerTimeouts.
	Timeouts *ServerTimeouts
	// DeviceFactories are the door-terminal adapters the gateway can drive
	// (cmd/gateway passes the Hikvision and ZKTeco ones); a device of
	// another type in the devices list is a configuration error.
	DeviceFactories []devices.Factory
	// TracerProvider traces agent batches, uploads and commands (issue 19;
	// cmd/gateway builds it from OTEL_*); nil: no tracing.
	TracerProvider trace.TracerProvider
	// LogTitles is the log scrubber's window-title switch, set from the
	// policy's privacy.mask_window_titles; nil: none.
	LogTitles *logscrub.TitleSwitch
}

// Gateway is one gateway process's data path.
type Gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	version string
	reg     *prometheus.Registry
	extra   HandlerFactory
	tp      trace.TracerProvider
	titles  *logscrub.TitleSwitch

	buf  *buffer.Buffer
	auth *agentauth.Authority
	col  *collector.Collector
	// client is the HTTP client towards the cloud (server.tls).
	client *http.Client
	// cloudTLS is a copy of client's TLS configuration taken before any
	// request (the transport's own copy changes at its first request),
	// for the control channel's WebSocket dial.
	cloudTLS *tls.Config
	// cloud is the Agent API client of agent enrolment (the verifier,
	// agent reports); it reads the keyring's key at each request.
	cloud  *cloudclient.Client
	enrol  *enrolment
	intake *intake
	// devices supervises the door terminals of the devices list.
	devices *devices.Manager
	// deviceLists are gateway.yml's devices and the cloud's last list.
	deviceLists *deviceLists
	host        hostSampler
	group       *lifecycle.Group

	mu               sync.Mutex
	started, stopped bool
}

// New assembles a gateway without starting it: it checks the credentials
// (stored, configured, or a provisioning token), opens the buffer (no
// goroutine runs until Start) and builds the collector, the servers and
// the enrolment. Stop releases it, started or not.
func New(ctx context.Context, cfg *config.Config, deps Deps) (*Gateway, error) {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	to := DefaultServerTimeouts()
	if deps.Timeouts != nil {
		to = *deps.Timeouts
	}
	g := &Gateway{cfg: cfg, log: log, version: deps.Version, reg: prometheus.NewRegistry(), extra: deps.ExtraHandlers,
		tp: deps.TracerProvider, titles: deps.LogTitles}
	if _, err := credentials(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Buffer.Path), 0o750); err != nil {
		return nil, fmt.Errorf("gateway: create buffer directory (buffer.path): %w", err)
	}
	client, err := cloudclient.NewHTTPClient(tlsFiles(cfg), cfg.Server.Timeout)
	if err != nil {
		return nil, fmt.Errorf("gateway: server.tls: %w", err)
	}
	g.client, g.cloudTLS = client, cloudclient.TLSConfig(client).Clone()
	tlsConf, err := collectorTLS(cfg.Gateway.TLSCertFile, cfg.Gateway.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	g.enrol = newEnrolment(cfg, client, g.version, log, g.onlineParts, lifecycle.NewLoop("enrolment sync", log, g.syncEnrolment))
	g.cloud = cloudclient.New(cloudclient.Options{BaseURL: cfg.Server.URL, APIKey: g.enrol.apiKey, HTTP: client})
	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g.buf, err = buffer.New(ctx, buffer.Options{
		// Dead letters (bounded by the config): events set aside by the
		// uplink (see uplink.isolate).
		Config:     cfg.Buffer,
		Logger:     log.With("component", "buffer"),
		Registerer: g.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	fail := func(err error) (*Gateway, error) {
		_ = g.buf.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	g.auth, err = agentauth.New(ctx, g.buf, agentauth.Options{Refresh: g.fetchVerifier, Logger: log.With("component", "agentauth"), Registerer: g.reg})
	if err != nil {
		return fail(fmt.Errorf("gateway: %w", err))
	}
	lim, err := throttle.New(throttle.Config{}, throttle.Deps{Logger: log.With("component", "throttle"), Registerer: g.reg})
	if err != nil {
		return fail(fmt.Errorf("gateway: %w", err))
	}
	g.col = collector.New(g.buf, collector.Options{
		Config:     cfg.Collector.Config,
		Auth:       g.auth,
		Throttle:   lim,
		Policy:     g.agentPolicy,
		Logger:     log.With("component", "collector"),
		Registerer: g.reg,
		// The gateway's id is known after enrolment; spans carry it from
		// the upload on.
		TracerProvider: deps.TracerProvider,
	})
	reg, err := devices.NewRegistry(deps.DeviceFactories...)
	if err != nil {
		return fail(fmt.Errorf("gateway: %w", err))
	}
	g.devices, err = devices.NewManager(devices.ManagerOptions{Config: cfg.Device, Registry: reg, Store: g.buf,
		Metrics: devices.NewMetrics(g.reg), Logger: log.With("component", "devices"), TracerProvider: deps.TracerProvider})
	if err != nil {
		return fail(fmt.Errorf("gateway: %w", err))
	}
	if err := g.devices.Apply(ctx, cfg.Devices); err != nil {
		return fail(fmt.Errorf("config: %w", err))
	}
	// With the cloud's last device list (devices_update), checked device
	// by device: a device the cloud got wrong does not stop the gateway.
	g.deviceLists = &deviceLists{m: g.devices, local: cfg.Devices, store: g.buf, log: log.With("component", "devices")}
	if err := g.deviceLists.restore(ctx); err != nil {
		return fail(fmt.Errorf("gateway: %w", err))
	}
	g.enrol.registerControlMetrics(g.reg, policyInfo{g})
	mux := http.NewServeMux()
	g.col.Routes(mux)
	healthMux := mux
	if cfg.Health.Listen != "" {
		healthMux = http.NewServeMux()
	}
	health.Routes(healthMux, health.Options{
		Config:   cfg.Health.Config,
		Buffer:   g.buf,
		Agents:   g.col.Agents(),
		Gatherer: g.reg,
		Uplink:   g.uplink,
		Identity: g.enrol.identity,
		Control:  g.controlStatus,
		Devices:  g.devices.Statuses,
		Version:  g.version,
		Started:  time.Now(),
	})
	red, err := newRED(g.reg)
	if err != nil {
		return fail(fmt.Errorf("gateway: metrics: %w", err))
	}
	g.intake = newIntake(cfg.Gateway, cfg.Health.Listen, tlsConf, to, g.col, mux, healthMux, red, log)
	g.group = lifecycle.NewGroup(log,
		lifecycle.Member{Name: "buffer", Service: g.buf},
		// Device events and cursors go to the buffer.
		lifecycle.Member{Name: "devices", Service: g.devices},
		// The configured verifier is stored in the buffer, so it needs the
		// buffer's writer; agents enrol against it from the first request.
		lifecycle.Member{Name: "enrolment verifier (collector.enrolment_verifier)", Service: startStep(func(ctx context.Context) error {
			if err := g.auth.SeedVerifier(ctx, cfg.Collector.EnrolmentVerifier); err != nil {
				return fmt.Errorf("config: collector.enrolment_verifier: %w", err)
			}
			return nil
		})},
		lifecycle.Member{Name: "enrolment", Service: g.enrol},
		lifecycle.Member{Name: "intake", Service: g.intake},
	)
	return g, nil
}

// startStep is a Service that does one thing at Start and nothing at Stop.
type startStep func(ctx context.Context) error

// Start runs the step.
func (s startStep) Start(ctx context.Context) error { return s(ctx) }

// Stop does nothing.
func (s startStep) Stop(context.Context) error { return nil }

// Start starts the parts in dependency order (see the package comment) and
// returns once agents can be served; enrolment and the cloud-facing parts
// continue in the background. A part that fails to start stops those
// already started, and the error names it.
func (g *Gateway) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return errors.New("gateway: start after stop")
	}
	if g.started {
		return errors.New("gateway: started twice")
	}
	g.started = true
	if err := g.group.Start(ctx); err != nil {
		// The group stopped what it had started; the buffer may not have
		// started at all, and is closed either way.
		return errors.Join(err, g.buf.Stop(context.WithoutCancel(ctx)))
	}
	cfg := g.cfg
	g.log.Info("gateway started", "http", g.Addr(), "grpc", g.GRPCAddr(), "health", g.HealthAddr(), "tls", g.intake.tls != nil, "buffer", cfg.Buffer.Path,
		"synchronous", cfg.Buffer.Synchronous, "max_size", cfg.Buffer.MaxBytes, "version", g.version)
	return nil
}

// Stop stops the parts in reverse order: intake (ending agents' long-polls
// and waiting for in-flight requests, whose events are committed before
// they are answered), the control client (a command cut short is not in
// the ledger and is redelivered), the uplink (a batch in flight stays
// claimed and is resent after restart), the executor, and the buffer.
// Without Start it closes the buffer; a second Stop returns nil.
func (g *Gateway) Stop(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return nil
	}
	g.stopped = true
	var err error
	if g.started {
		err = g.group.Stop(ctx)
	} else {
		g.col.AgentCommands().Close()
		err = g.buf.Stop(ctx)
	}
	g.log.Info("gateway stopped")
	return err
}

// Registry returns the gateway's Prometheus registry.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// Addr is the HTTP listener's address once started ("" before).
func (g *Gateway) Addr() string { return addr(g.intake.httpLn) }

// HealthAddr is the address of /health* and /metrics: health.listen's
// listener, or Addr when they share gateway.listen.
func (g *Gateway) HealthAddr() string {
	if g.intake.healthLn != nil {
		return addr(g.intake.healthLn)
	}
	return g.Addr()
}

// Auth is the gateway's agent authority (enrolment and credentials).
func (g *Gateway) Auth() *agentauth.Authority { return g.auth }

// GRPCAddr is the gRPC listener's address, or "" when disabled.
func (g *Gateway) GRPCAddr() string { return addr(g.intake.grpcLn) }

// uplink is the running uplink, or nil before the gateway has its
// credentials (health shows no uplink then).
func (g *Gateway) uplink() *uplink.Uplink {
	if on := g.enrol.online(); on != nil {
		return on.up
	}
	return nil
}

// identity is the gateway id and provisioning state.
func (g *Gateway) identity() (string, string) { return g.enrol.identity() }

// apiKey is the current API key ("" before enrolment).
func (g *Gateway) apiKey() string { return g.enrol.apiKey() }

// tlsFiles names the TLS files of the client towards the cloud (server.*).
func tlsFiles(cfg *config.Config) cloudclient.TLSFiles {
	return cloudclient.TLSFiles{CAFile: cfg.Server.CAFile, CertFile: cfg.Server.CertFile, KeyFile: cfg.Server.KeyFile}
}

// KeyFilePath is where the API key is kept: beside the buffer file.
func KeyFilePath(cfg *config.Config) string {
	return filepath.Join(filepath.Dir(cfg.Buffer.Path), enroll.FileName)
}

// credentials returns stored or configured credentials, or nil when the
// gateway must provision; an error when it cannot.
func credentials(cfg *config.Config) (*enroll.Credentials, error) {
	creds, err := enroll.Load(KeyFilePath(cfg))
	if err != nil {
		return nil, err
	}
	if creds != nil {
		return creds, nil
	}
	if cfg.Organization.APIKey != "" {
		return &enroll.Credentials{APIKey: cfg.Organization.APIKey, OrganizationID: cfg.Organization.ID, ServerURL: cfg.Server.URL}, nil
	}
	if cfg.Organization.ProvisioningToken == "" {
		return nil, config.ErrNoCredentials
	}
	return nil, nil
}

// testConnectionTimeout bounds TestConnection's request.
const testConnectionTimeout = 15 * time.Second

// TestConnection checks the cloud with the gateway's key (or, before
// provisioning, checks reachability) and returns a one-line verdict. The
// error is nil when the verdict is OK.
func TestConnection(ctx context.Context, cfg *config.Config) (string, error) {
	client, err := cloudclient.NewHTTPClient(tlsFiles(cfg), testConnectionTimeout)
	if err != nil {
		return "FAIL: " + err.Error(), err
	}
	creds, err := credentials(cfg)
	if err != nil {
		return "FAIL: " + err.Error(), err
	}
	key := ""
	if creds != nil {
		key = creds.APIKey
	}
	start := time.Now()
	ping, err := enroll.Ping(ctx, cloudclient.New(cloudclient.Options{BaseURL: cfg.Server.URL, APIKey: func() string { return key }, HTTP: client}))
	rtt := time.Since(start).Round(time.Millisecond)
	se := cloudclient.Status(err)
	switch {
	case err == nil:
		return fmt.Sprintf("OK: connected to %s as gateway %s (organisation %d) in %s", cfg.Server.URL, ping.GatewayID, ping.OrganizationID, rtt), nil
	case key == "" && se != nil && se.Status == http.StatusUnauthorized:
		return fmt.Sprintf("OK: %s is reachable (%s); this gateway is not provisioned yet and will provision for organisation %d at first start",
			cfg.Server.URL, rtt, cfg.Organization.ID), nil
	case se != nil && se.Unauthorized():
		return fmt.Sprintf("FAIL: %s rejected this gateway's API key (%d); re-provision the gateway", cfg.Server.URL, se.Status), err
	case se != nil:
		return fmt.Sprintf("FAIL: %s answered %d: %s", cfg.Server.URL, se.Status, se.Body.Message), err
	default:
		return fmt.Sprintf("FAIL: cannot reach %s: %v", cfg.Server.URL, err), err
	}
}
