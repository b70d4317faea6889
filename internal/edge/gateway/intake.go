package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/staffcontrol/staffcontrol/internal/edge/collector"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/redmetrics"
	"github.com/staffcontrol/staffcontrol/internal/slowbody"
)

// ServerTimeouts bound how long a client may hold one of the gateway's
// connections. They are fixed (see docs/operations.md, "Server
// timeouts"): DefaultServerTimeouts; tests shorten them through
// Deps.Timeouts.
type ServerTimeouts struct {
	// HTTP (collector, health, metrics): the headers, the body's minimum
	// rate after a grace (no fixed whole-request timeout, so a large
	// screenshot batch on a slow link passes), the answer, an idle
	// keep-alive.
	ReadHeader, Write, Idle time.Duration
	BodyMinRate             int64
	BodyGrace               time.Duration
	// HealthWrite bounds an answer on health.listen's own server.
	HealthWrite time.Duration
	// gRPC: the connection handshake, and keepalive pings that find a
	// vanished peer and close idle connections.
	GRPCHandshake, GRPCIdle, GRPCPing, GRPCPingTimeout time.Duration
	// GRPCMaxAge (plus GRPCMaxAgeGrace for the calls in flight) bounds a
	// connection's life, and so a call whose message trickles in: gRPC
	// has no per-message rate check.
	GRPCMaxAge, GRPCMaxAgeGrace time.Duration
	// GRPCMinPing is the shortest keepalive interval agents may use (they
	// may ping every 20 s, even between calls).
	GRPCMinPing time.Duration
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
}

// DefaultServerTimeouts are the gateway's server timeouts. The write
// timeout covers the agents' command long-poll (collector.MaxCommandWait)
// with a minute to spare.
func DefaultServerTimeouts() ServerTimeouts {
	return ServerTimeouts{
		ReadHeader: 10 * time.Second, Write: collector.MaxCommandWait + time.Minute, Idle: 2 * time.Minute,
		BodyMinRate: slowbody.DefaultMinRate, BodyGrace: slowbody.DefaultGrace, HealthWrite: time.Minute,
		GRPCHandshake: 10 * time.Second, GRPCIdle: 5 * time.Minute, GRPCPing: 2 * time.Minute, GRPCPingTimeout: 20 * time.Second,
		GRPCMaxAge: time.Hour, GRPCMaxAgeGrace: 30 * time.Minute, GRPCMinPing: 20 * time.Second,
		MaxHeaderBytes: 64 << 10,
	}
}

// intake is the agents' side of the gateway as a lifecycle.Service: the
// collector's HTTP server (with /health* and /metrics unless health.listen
// has its own server) and gRPC server. newIntake builds the servers; Start
// binds the listeners and serves; Stop ends the agents' command long-polls
// and shuts the servers down gracefully, waiting for requests in flight
// (their events are committed before they are answered).
type intake struct {
	cfg  config.Gateway
	tls  *tls.Config
	log  *slog.Logger
	col  *collector.Collector
	http *http.Server
	// health serves health.listen, or is nil (the routes are on http).
	health       *http.Server
	healthListen string
	grpc         *grpc.Server // nil when gateway.grpc_listen is off

	mu                       sync.Mutex
	started, stopped         bool
	httpLn, healthLn, grpcLn net.Listener
	wg                       sync.WaitGroup
}

// newIntake builds the servers over the collector's routes (mux) and the
// health routes (healthMux: mux itself when healthListen is "").
func newIntake(cfg config.Gateway, healthListen string, tlsConf *tls.Config, to ServerTimeouts, col *collector.Collector,
	mux, healthMux *http.ServeMux, red red, log *slog.Logger) *intake {
	in := &intake{cfg: cfg, tls: tlsConf, log: log, col: col, healthListen: healthListen}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	body := slowbody.Options{MinRate: to.BodyMinRate, Grace: to.BodyGrace, WriteTimeout: to.Write,
		OnCutOff: func(r *http.Request, received int64) {
			log.Warn("request body too slow; cut off", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "received_bytes", received)
		}}
	in.http = &http.Server{
		Handler:           slowbody.Handler(red.http.Handler(mux), body),
		ReadHeaderTimeout: to.ReadHeader,
		WriteTimeout:      to.Write,
		IdleTimeout:       to.Idle,
		MaxHeaderBytes:    to.MaxHeaderBytes,
		ErrorLog:          errLog,
	}
	if healthListen != "" {
		in.health = &http.Server{Handler: red.http.Handler(healthMux), ReadHeaderTimeout: to.ReadHeader, WriteTimeout: to.HealthWrite, IdleTimeout: to.Idle,
			MaxHeaderBytes: to.MaxHeaderBytes, ErrorLog: errLog}
	}
	if grpcEnabled(cfg) {
		var creds []grpc.ServerOption
		if tlsConf != nil {
			creds = append(creds, grpc.Creds(grpccreds.NewTLS(tlsConf.Clone())))
		}
		creds = append(creds, red.grpc.ServerOptions()...)
		in.grpc = col.GRPCServer(append(creds,
			grpc.ConnectionTimeout(to.GRPCHandshake),
			grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: to.GRPCIdle, Time: to.GRPCPing, Timeout: to.GRPCPingTimeout,
				MaxConnectionAge: to.GRPCMaxAge, MaxConnectionAgeGrace: to.GRPCMaxAgeGrace}),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: to.GRPCMinPing, PermitWithoutStream: true}),
		)...)
		red.grpc.Init(in.grpc)
	}
	return in
}

// red is the RED metrics of the gateway's HTTP and gRPC servers
// (internal/redmetrics, the names the cloud services use too).
type red struct {
	http *redmetrics.HTTP
	grpc *redmetrics.GRPC
}

// newRED registers them with reg.
func newRED(reg prometheus.Registerer) (red, error) {
	h, err := redmetrics.NewHTTP(reg)
	if err != nil {
		return red{}, err
	}
	g, err := redmetrics.NewGRPC(reg)
	if err != nil {
		return red{}, err
	}
	return red{http: h, grpc: g}, nil
}

// grpcEnabled: gateway.grpc_listen is set and not "off".
func grpcEnabled(cfg config.Gateway) bool { return cfg.GRPCListen != "" && cfg.GRPCListen != "off" }

// Start binds gateway.listen (TLS when configured), health.listen and
// gateway.grpc_listen and serves them; it returns once they accept.
func (in *intake) Start(context.Context) (err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return errors.New("gateway: intake: start after stop")
	}
	if in.started {
		return errors.New("gateway: intake: started twice")
	}
	in.started = true
	var bound []net.Listener
	defer func() {
		if err != nil {
			for _, ln := range bound {
				ln.Close()
			}
			in.httpLn, in.healthLn, in.grpcLn = nil, nil, nil
		}
	}()
	ln, err := net.Listen("tcp", in.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: gateway.listen %s: %w", in.cfg.Listen, err)
	}
	bound = append(bound, ln)
	if in.tls != nil {
		c := in.tls.Clone()
		c.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, c)
	}
	in.httpLn = ln
	if in.health != nil {
		if in.healthLn, err = net.Listen("tcp", in.healthListen); err != nil {
			return fmt.Errorf("gateway: health.listen %s: %w", in.healthListen, err)
		}
		bound = append(bound, in.healthLn)
	}
	if in.grpc != nil {
		if in.grpcLn, err = net.Listen("tcp", in.cfg.GRPCListen); err != nil {
			return fmt.Errorf("gateway: gateway.grpc_listen %s: %w", in.cfg.GRPCListen, err)
		}
		bound = append(bound, in.grpcLn)
	}
	in.serve("http server", func() error { return in.http.Serve(in.httpLn) }, http.ErrServerClosed)
	if in.health != nil {
		in.serve("health server", func() error { return in.health.Serve(in.healthLn) }, http.ErrServerClosed)
	}
	if in.grpc != nil {
		in.serve("grpc server", func() error { return in.grpc.Serve(in.grpcLn) }, grpc.ErrServerStopped)
	}
	return nil
}

func (in *intake) serve(name string, fn func() error, closed error) {
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, closed) {
			in.log.Error(name+" stopped", "err", err)
		}
	}()
}

// Stop ends the agents' long-polls and shuts the servers down, waiting for
// the requests in flight, or until ctx ends (gRPC calls are then cut).
func (in *intake) Stop(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return nil
	}
	in.stopped = true
	in.col.AgentCommands().Close()
	if !in.started {
		return nil
	}
	var errs []error
	if err := in.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("gateway: http shutdown: %w", err))
	}
	if in.health != nil {
		if err := in.health.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("gateway: health shutdown: %w", err))
		}
	}
	if in.grpc != nil {
		done := make(chan struct{})
		go func() { in.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			in.grpc.Stop()
		}
	}
	in.wg.Wait()
	return errors.Join(errs...)
}

// addr is the listener's address, or "" when not listening.
func addr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}
