// Package agentapitest starts a whole Agent API — every part agentapi.New
// assembles, started as cmd/agent-api starts them, on a real loopback
// listener — over a test database, for the tests of the packages behind it
// and the end-to-end tests. Test support.
package agentapitest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// Options adjust the started Agent API. Zero fields take the defaults.
type Options struct {
	// Config is the server's configuration; an empty Addr is a free
	// loopback port, and a local file store (Storage) without a BasePath
	// is a directory of the test's.
	// Timings such as Config.Control and Config.Queue shorten the control
	// channel's for tests.
	Config agentapi.Config
	// Registry receives the metrics (nil: a new one, in API.Registry).
	Registry *prometheus.Registry
	// Logger is the server's (nil: a checked test logger, logtest.New).
	Logger *slog.Logger
	// TracerProvider traces the server (nil: no tracing).
	TracerProvider trace.TracerProvider
}

// API is a started Agent API.
type API struct {
	// URL is the base URL of its listener ("http://127.0.0.1:port").
	URL string
	// Server is the started server.
	Server *agentapi.Server
	agentapi.Parts

	t testing.TB
}

// stopWithin bounds Stop: the listener's graceful shutdown (10 s) and the
// parts after it.
const stopWithin = 30 * time.Second

// Start starts a whole Agent API over db (a pool of the test database as
// the ingest role, which the caller keeps and closes) and stops it when the
// test ends (or earlier, by Stop).
func Start(t testing.TB, db *pgxpool.Pool, opts Options) *API {
	t.Helper()
	cfg := opts.Config
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Storage.Driver != storage.DriverS3 && cfg.Storage.BasePath == "" {
		cfg.Storage.BasePath = t.TempDir()
	}
	logger := opts.Logger
	if logger == nil {
		logger = logtest.New(t)
	}
	ctx := context.Background()
	s, err := agentapi.New(ctx, cfg, agentapi.ServerDeps{Logger: logger, DB: db, Registry: opts.Registry, TracerProvider: opts.TracerProvider})
	if err != nil {
		t.Fatalf("agentapitest: new: %v", err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatalf("agentapitest: start: %v", err)
	}
	a := &API{URL: "http://" + s.Addr().String(), Server: s, Parts: s.Parts(), t: t}
	t.Cleanup(a.Stop)
	return a
}

// Stop stops the Agent API (its parts in reverse order, the listener
// first); a second Stop does nothing. A failure fails the test.
func (a *API) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), stopWithin)
	defer cancel()
	if err := a.Server.Stop(ctx); err != nil {
		a.t.Errorf("agentapitest: stop: %v", err)
	}
}
