package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
)

// ListenerConfig is what a Listener serves and how.
type ListenerConfig struct {
	// Name names the service in the log ("agent api": "agent api
	// listening") and in errors.
	Name string
	// Addr is the address to bind, and AddrKey the configuration key it
	// came from, named when binding fails.
	Addr, AddrKey string
	// TLS, when not nil, wraps the bound listener (the handshake happens
	// on each accepted connection).
	TLS *tls.Config
	// Handler is what is served.
	Handler http.Handler
	// Logger is the listener's logger (nil discards).
	Logger *slog.Logger
	// Timeouts bound every step of a request (see Serve).
	Timeouts HTTPTimeouts
	// Listening is called with the bound address once the listener
	// accepts (optional).
	Listening func(net.Addr)
}

// Listener is a cloud service's HTTP listener as a lifecycle.Service:
// Start binds the address (TLS when configured), reports it and serves in
// the background with Serve (its timeouts, its graceful shutdown); Stop
// shuts it down and returns within its context. Failed tells a listener
// that stopped serving on its own from one stopped by Stop.
type Listener struct {
	cfg    ListenerConfig
	logger *slog.Logger

	mu       sync.Mutex
	bound    net.Addr
	loop     *lifecycle.Loop
	stopped  bool
	failed   chan struct{}
	failOnce sync.Once
}

// NewListener returns the Listener of cfg, not yet bound.
func NewListener(cfg ListenerConfig) *Listener {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{cfg: cfg, logger: logger, failed: make(chan struct{})}
}

// Start binds the address and starts serving; it returns once the listener
// accepts. Starting twice, or after Stop, is an error.
func (l *Listener) Start(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return fmt.Errorf("%s: listener: start after stop", l.cfg.Name)
	}
	if l.loop != nil {
		return fmt.Errorf("%s: listener: started twice", l.cfg.Name)
	}
	ln, err := Listen(l.cfg.Addr, l.cfg.AddrKey)
	if err != nil {
		return err
	}
	if l.cfg.TLS != nil {
		ln = tls.NewListener(ln, l.cfg.TLS)
	}
	l.bound = ln.Addr()
	l.loop = lifecycle.NewLoop("http", l.logger, func(ctx context.Context) error {
		err := Serve(ctx, ln, l.cfg.Handler, l.logger, l.cfg.Timeouts)
		if ctx.Err() == nil {
			l.failOnce.Do(func() { close(l.failed) })
		}
		return err
	})
	if err := l.loop.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	if l.cfg.Listening != nil {
		l.cfg.Listening(l.bound)
	}
	l.logger.InfoContext(ctx, l.cfg.Name+" listening", "addr", l.bound.String())
	return nil
}

// Stop shuts the listener down gracefully (in-flight requests get up to
// 10 s, see Serve), or returns ctx's error when ctx ends first. Stop
// without Start and a second Stop return nil.
func (l *Listener) Stop(ctx context.Context) error {
	l.mu.Lock()
	l.stopped = true
	loop := l.loop
	l.mu.Unlock()
	if loop == nil {
		return nil
	}
	return loop.Stop(ctx)
}

// Addr is the bound address once started (nil before).
func (l *Listener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bound
}

// Failed is closed when the listener stops serving on its own (not by
// Stop); Stop reports the reason.
func (l *Listener) Failed() <-chan struct{} { return l.failed }
