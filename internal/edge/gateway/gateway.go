// Package gateway wires the Agent Gateway together: buffer, collector (HTTP
// and gRPC), enrolment, uplink, the control plane (control client, executor,
// agent control; see control.go) and health, with a Start/Shutdown
// lifecycle. Shutdown stops intake first, then the control client, then the
// uplink, then closes the executor and the buffer, so no acknowledged event,
// upload result or command outcome is left half-recorded.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/staffcontrol/staffcontrol/internal/backoff"
	"github.com/staffcontrol/staffcontrol/internal/edge/agentauth"
	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
	"github.com/staffcontrol/staffcontrol/internal/edge/collector"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/control"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/edge/health"
	"github.com/staffcontrol/staffcontrol/internal/edge/uplink"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/slowbody"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// Gateway is one gateway process's data path.
type Gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	version string
	reg     *prometheus.Registry

	buf    *buffer.Buffer
	auth   *agentauth.Authority
	col    *collector.Collector
	client *http.Client
	// cloud is the Agent API client of enrolment (the verifier, agent
	// reports); it reads the keyring's key at each request.
	cloud   *cloudclient.Client
	httpSrv *http.Server
	httpLn  net.Listener
	// healthSrv and healthLn serve /health* and /metrics when health.listen
	// is set (nil otherwise: they share httpSrv).
	healthSrv *http.Server
	healthLn  net.Listener
	grpcSrv   *grpc.Server
	grpcLn    net.Listener

	up     atomic.Pointer[uplink.Uplink]
	idMu   sync.Mutex
	gwID   string
	idStat string

	// ExtraHandlers, when set before Start, adds executor handlers (see
	// HandlerFactory).
	ExtraHandlers HandlerFactory

	keyring    atomic.Pointer[enroll.Keyring]
	exec       atomic.Pointer[executor.Executor]
	ctl        atomic.Pointer[control.Client]
	host       hostCPU
	ctlCancel  context.CancelFunc
	ctlStopped chan struct{} // closed when the control client has stopped (or never started)

	cancel context.CancelFunc
	wg     sync.WaitGroup

	timeouts serverTimeouts
}

// serverTimeouts bound how long a client may hold one of the gateway's
// connections; fixed (see docs/operations.md, "Server timeouts"), and
// shortened by tests.
type serverTimeouts struct {
	// HTTP (collector, health, metrics): the headers, the body's minimum
	// rate after a grace (no fixed whole-request timeout, so a large
	// screenshot batch on a slow link passes), the answer, an idle
	// keep-alive.
	readHeader, write, idle time.Duration
	bodyMinRate             int64
	bodyGrace               time.Duration
	// gRPC: the connection handshake, and keepalive pings that find a
	// vanished peer and close idle connections.
	grpcHandshake, grpcIdle, grpcPing, grpcPingTimeout time.Duration
	// grpcMaxAge (plus grpcMaxAgeGrace for the calls in flight) bounds a
	// connection's life, and so a call whose message trickles in: gRPC
	// has no per-message rate check.
	grpcMaxAge, grpcMaxAgeGrace time.Duration
}

// defaultTimeouts are the gateway's server timeouts. The write timeout
// covers the agents' command long-poll (collector.MaxCommandWait) with a
// minute to spare.
func defaultTimeouts() serverTimeouts {
	return serverTimeouts{
		readHeader: 10 * time.Second, write: collector.MaxCommandWait + time.Minute, idle: 2 * time.Minute,
		bodyMinRate: slowbody.DefaultMinRate, bodyGrace: slowbody.DefaultGrace,
		grpcHandshake: 10 * time.Second, grpcIdle: 5 * time.Minute, grpcPing: 2 * time.Minute, grpcPingTimeout: 20 * time.Second,
		grpcMaxAge: time.Hour, grpcMaxAgeGrace: 30 * time.Minute,
	}
}

// New returns an unstarted gateway.
func New(cfg *config.Config, log *slog.Logger, version string) *Gateway {
	return &Gateway{cfg: cfg, log: log, version: version, reg: prometheus.NewRegistry(), idStat: "pending", timeouts: defaultTimeouts()}
}

// Registry returns the gateway's Prometheus registry.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// Addr is the HTTP listener's address once started.
func (g *Gateway) Addr() string { return g.httpLn.Addr().String() }

// HealthAddr is the address of /health* and /metrics: health.listen's
// listener, or Addr when they share gateway.listen.
func (g *Gateway) HealthAddr() string {
	if g.healthLn != nil {
		return g.healthLn.Addr().String()
	}
	return g.Addr()
}

// Auth is the gateway's agent authority (enrolment and credentials).
func (g *Gateway) Auth() *agentauth.Authority { return g.auth }

// GRPCAddr is the gRPC listener's address, or "" when disabled.
func (g *Gateway) GRPCAddr() string {
	if g.grpcLn == nil {
		return ""
	}
	return g.grpcLn.Addr().String()
}

func (g *Gateway) setIdentity(id, state string) {
	g.idMu.Lock()
	g.gwID, g.idStat = id, state
	g.idMu.Unlock()
}

func (g *Gateway) identity() (string, string) {
	g.idMu.Lock()
	defer g.idMu.Unlock()
	return g.gwID, g.idStat
}

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

// Start opens the buffer, starts the listeners and, in the background,
// enrolment and the uplink. It returns once agents can be served.
func (g *Gateway) Start(ctx context.Context) error {
	cfg := g.cfg
	if _, err := credentials(cfg); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Buffer.Path), 0o750); err != nil {
		return fmt.Errorf("gateway: create buffer directory (buffer.path): %w", err)
	}
	client, err := cloudclient.NewHTTPClient(tlsFiles(cfg), cfg.Server.Timeout)
	if err != nil {
		return fmt.Errorf("gateway: server.tls: %w", err)
	}
	g.client = client
	g.cloud = cloudclient.New(cloudclient.Options{BaseURL: cfg.Server.URL, APIKey: g.apiKey, HTTP: client})
	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buf, err := buffer.Open(ctx, buffer.Options{
		Path:        cfg.Buffer.Path,
		MaxBytes:    cfg.Buffer.MaxSize,
		Retention:   time.Duration(cfg.Buffer.RetentionDays) * 24 * time.Hour,
		Synchronous: cfg.Buffer.Synchronous,
		Logger:      g.log.With("component", "buffer"),
		Registerer:  g.reg,
		// Dead letters: events set aside by the uplink (see uplink.isolate).
		DeadLetterMaxEvents: cfg.Buffer.DeadLetterMaxEvents,
		DeadLetterMaxBytes:  cfg.Buffer.DeadLetterMaxBytes,
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.buf = buf
	g.auth, err = agentauth.New(ctx, buf, agentauth.Options{Refresh: g.fetchVerifier, Logger: g.log.With("component", "agentauth"), Registerer: g.reg})
	if err != nil {
		buf.Close()
		return fmt.Errorf("gateway: %w", err)
	}
	if err := g.auth.SeedVerifier(ctx, cfg.Collector.EnrolmentVerifier); err != nil {
		buf.Close()
		return fmt.Errorf("config: collector.enrolment_verifier: %w", err)
	}
	tlsConf, err := collectorTLS(cfg.Gateway.TLSCertFile, cfg.Gateway.TLSKeyFile)
	if err != nil {
		buf.Close()
		return fmt.Errorf("config: %w", err)
	}
	lim, err := throttle.New(throttle.Config{}, throttle.Deps{Logger: g.log.With("component", "throttle"), Registerer: g.reg})
	if err != nil {
		buf.Close()
		return fmt.Errorf("gateway: %w", err)
	}
	g.col = collector.New(buf, collector.Options{
		Auth:               g.auth,
		Throttle:           lim,
		MaxBodyBytes:       cfg.Collector.MaxBodyBytes,
		MaxBatchEvents:     cfg.Collector.MaxBatchEvents,
		MaxScreenshotBytes: cfg.Collector.MaxScreenshotBytes,
		RetryAfter:         cfg.Collector.RetryAfter,
		HeartbeatInterval:  cfg.Collector.HeartbeatInterval,
		Policy:             g.agentPolicy,
		Logger:             g.log.With("component", "collector"),
		Registerer:         g.reg,
	})
	g.registerControlMetrics()
	mux := http.NewServeMux()
	g.col.Routes(mux)
	healthMux := mux
	if cfg.Health.Listen != "" {
		healthMux = http.NewServeMux()
	}
	health.Routes(healthMux, health.Options{
		OperatorToken: cfg.Health.OperatorToken,
		Buffer:        buf,
		Agents:        g.col.Agents(),
		Gatherer:      g.reg,
		Uplink:        func() *uplink.Uplink { return g.up.Load() },
		Identity:      g.identity,
		Control:       g.controlStatus,
		MaxUnsentAge:  cfg.Health.MaxUnsentAge,
		Version:       g.version,
		Started:       time.Now(),
	})
	g.httpLn, err = net.Listen("tcp", cfg.Gateway.Listen)
	if err != nil {
		buf.Close()
		return fmt.Errorf("gateway: gateway.listen %s: %w", cfg.Gateway.Listen, err)
	}
	if tlsConf != nil {
		c := tlsConf.Clone()
		c.NextProtos = []string{"http/1.1"}
		g.httpLn = tls.NewListener(g.httpLn, c)
	}
	if cfg.Health.Listen != "" {
		if g.healthLn, err = net.Listen("tcp", cfg.Health.Listen); err != nil {
			g.httpLn.Close()
			buf.Close()
			return fmt.Errorf("gateway: health.listen %s: %w", cfg.Health.Listen, err)
		}
	}
	if cfg.Gateway.GRPCListen != "" && cfg.Gateway.GRPCListen != "off" {
		g.grpcLn, err = net.Listen("tcp", cfg.Gateway.GRPCListen)
		if err != nil {
			g.httpLn.Close()
			if g.healthLn != nil {
				g.healthLn.Close()
			}
			buf.Close()
			return fmt.Errorf("gateway: gateway.grpc_listen %s: %w", cfg.Gateway.GRPCListen, err)
		}
		to := g.timeouts
		var creds []grpc.ServerOption
		if tlsConf != nil {
			creds = append(creds, grpc.Creds(grpccreds.NewTLS(tlsConf.Clone())))
		}
		g.grpcSrv = g.col.GRPCServer(append(creds,
			grpc.ConnectionTimeout(to.grpcHandshake),
			grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: to.grpcIdle, Time: to.grpcPing, Timeout: to.grpcPingTimeout,
				MaxConnectionAge: to.grpcMaxAge, MaxConnectionAgeGrace: to.grpcMaxAgeGrace}),
			// Agents may ping every 20 s, even between calls.
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 20 * time.Second, PermitWithoutStream: true}),
		)...)
	}
	to := g.timeouts
	body := slowbody.Options{MinRate: to.bodyMinRate, Grace: to.bodyGrace, WriteTimeout: to.write,
		OnCutOff: func(r *http.Request, received int64) {
			g.log.Warn("request body too slow; cut off", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "received_bytes", received)
		}}
	g.httpSrv = &http.Server{
		Handler:           slowbody.Handler(mux, body),
		ReadHeaderTimeout: to.readHeader,
		WriteTimeout:      to.write,
		IdleTimeout:       to.idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	if g.healthLn != nil {
		g.healthSrv = &http.Server{Handler: healthMux, ReadHeaderTimeout: to.readHeader, WriteTimeout: time.Minute, IdleTimeout: to.idle,
			MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := g.healthSrv.Serve(g.healthLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("health server stopped", "err", err)
			}
		}()
	}
	bg, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	// The control plane stops before the uplink: its context is a child.
	ctl, ctlCancel := context.WithCancel(bg)
	g.ctlCancel, g.ctlStopped = ctlCancel, make(chan struct{})
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := g.httpSrv.Serve(g.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("http server stopped", "err", err)
		}
	}()
	if g.grpcSrv != nil {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := g.grpcSrv.Serve(g.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				g.log.Error("grpc server stopped", "err", err)
			}
		}()
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.enrollAndUpload(bg, ctl)
	}()
	g.log.Info("gateway started", "http", g.Addr(), "grpc", g.GRPCAddr(), "health", g.HealthAddr(), "tls", tlsConf != nil, "buffer", cfg.Buffer.Path,
		"synchronous", cfg.Buffer.Synchronous, "max_size", cfg.Buffer.MaxSize, "version", g.version)
	return nil
}

// enrollAndUpload obtains credentials (provisioning if needed, retrying
// forever with backoff) and then runs the control plane until ctlCtx ends
// and the uplink until ctx ends. Agents are served meanwhile: data waits in
// the buffer.
func (g *Gateway) enrollAndUpload(ctx, ctlCtx context.Context) {
	var stopOnce sync.Once
	controlStopped := func() { stopOnce.Do(func() { close(g.ctlStopped) }) }
	defer controlStopped()
	cfg := g.cfg
	creds, err := credentials(cfg)
	if err != nil {
		g.setIdentity("", "failed: "+err.Error())
		g.log.Error("ALERT: gateway credentials unusable; uploads disabled", "err", err)
		return
	}
	pace := backoff.Policy{Initial: cfg.Uplink.BackoffInitial, Max: cfg.Uplink.BackoffMax}
	for attempt := 0; creds == nil && ctlCtx.Err() == nil; attempt++ {
		host, _ := os.Hostname()
		c, err := enroll.Provision(ctx, g.client, cfg.Server.URL, protocol.ProvisionRequest{
			OrganizationID: cfg.Organization.ID, ProvisioningToken: cfg.Organization.ProvisioningToken,
			Serial: cfg.Gateway.Serial, Hostname: host, Version: g.version})
		if err == nil {
			if err = enroll.Save(KeyFilePath(cfg), c); err == nil {
				creds = c
				g.log.Info("gateway provisioned", "gateway_id", c.GatewayID, "organization_id", c.OrganizationID, "key_file", KeyFilePath(cfg))
				break
			}
		}
		wait := pace.Delay(attempt)
		if se := cloudclient.Status(err); se != nil && !se.Retryable() {
			wait = cfg.Uplink.AuthRetryInterval
			g.log.Error("ALERT: provisioning refused; check organization.id and organization.provisioning_token", "err", err, "retry_in", wait.String())
		} else {
			if se != nil {
				wait = backoff.Floor(wait, se.RetryAfter, cfg.Uplink.AuthRetryInterval)
			}
			g.log.Warn("provisioning failed; retrying", "err", err, "retry_in", wait.String())
		}
		g.setIdentity("", "pending: "+err.Error())
		if !backoff.Sleep(ctlCtx, wait) {
			return
		}
	}
	if ctlCtx.Err() != nil {
		return
	}
	g.setIdentity(creds.GatewayID, "ok")
	k, err := enroll.NewKeyring(keyFileFor(cfg), creds)
	if err != nil {
		g.setIdentity(creds.GatewayID, "failed: "+err.Error())
		g.log.Error("ALERT: gateway credentials unusable; uploads disabled", "err", err)
		return
	}
	g.keyring.Store(k)
	g.wg.Add(1) // the caller's own count keeps the group above zero
	go func() {
		defer g.wg.Done()
		g.syncEnrolment(ctlCtx)
	}()
	// Data up does not depend on the control plane: without it the uplink
	// still runs.
	client, err := g.openControl(k)
	if err != nil {
		g.log.Error("ALERT: control plane not started; commands and policies will not arrive", "err", err)
	}
	up, err := uplink.New(g.buf, uplink.Options{
		ServerURL:          cfg.Server.URL,
		KeyFunc:            k.APIKey,
		GatewayID:          creds.GatewayID,
		Client:             g.client,
		MaxEvents:          cfg.Uplink.BatchMaxEvents,
		MaxBytes:           cfg.Uplink.BatchMaxBytes,
		MaxScreenshots:     cfg.Uplink.ScreenshotBatchMaxEvents,
		MaxScreenshotBytes: cfg.Uplink.ScreenshotBatchMaxBytes,
		FlushInterval:      cfg.Uplink.FlushInterval,
		BackoffInitial:     cfg.Uplink.BackoffInitial,
		BackoffMax:         cfg.Uplink.BackoffMax,
		AuthRetryInterval:  cfg.Uplink.AuthRetryInterval,
		Parallel:           cfg.Uplink.Parallel,
		IsolateAfter:       cfg.Uplink.IsolateAfterFailures,
		Logger:             g.log.With("component", "uplink"),
		Registerer:         g.reg,
	})
	if err != nil {
		g.setIdentity(creds.GatewayID, "failed: "+err.Error())
		g.log.Error("ALERT: uplink not started", "err", err)
		return
	}
	g.up.Store(up)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer controlStopped()
		if client != nil {
			client.Run(ctlCtx)
		}
	}()
	_ = up.Run(ctx)
	<-done
}

// Shutdown stops intake (ending agents' long-polls and waiting for
// in-flight requests, whose events are committed before they are
// answered), stops the control client (a command cut short is not in the
// ledger and is redelivered), stops the uplink and closes the executor and
// the buffer. A batch in flight stays claimed and is resent after restart.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var errs []error
	if g.col != nil {
		g.col.AgentCommands().Close()
	}
	if g.httpSrv != nil {
		if err := g.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("gateway: http shutdown: %w", err))
		}
	}
	if g.healthSrv != nil {
		if err := g.healthSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("gateway: health shutdown: %w", err))
		}
	}
	if g.grpcSrv != nil {
		done := make(chan struct{})
		go func() { g.grpcSrv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			g.grpcSrv.Stop()
		}
	}
	if g.ctlCancel != nil {
		g.ctlCancel()
		select {
		case <-g.ctlStopped:
		case <-ctx.Done():
			errs = append(errs, errors.New("gateway: control client did not stop in time"))
		}
	}
	if g.cancel != nil {
		g.cancel()
	}
	g.wg.Wait()
	if ex := g.exec.Load(); ex != nil {
		if err := ex.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gateway: close executor: %w", err))
		}
	}
	if g.buf != nil {
		if err := g.buf.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gateway: close buffer: %w", err))
		}
	}
	g.log.Info("gateway stopped")
	return errors.Join(errs...)
}

// TestConnection checks the cloud with the gateway's key (or, before
// provisioning, checks reachability) and returns a one-line verdict. The
// error is nil when the verdict is OK.
func TestConnection(ctx context.Context, cfg *config.Config) (string, error) {
	client, err := cloudclient.NewHTTPClient(tlsFiles(cfg), 15*time.Second)
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
