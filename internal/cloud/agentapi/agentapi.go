// Package agentapi is the Agent API (:3001): the cloud end of the
// gateways' data and control paths. It owns the HTTP routes table; the work
// behind each route lives in the packages it is given.
package agentapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
)

// Deps are the Agent API's dependencies.
type Deps struct {
	DB       *pgxpool.Pool // as the ingest role
	Logger   *slog.Logger
	Registry *prometheus.Registry
}

// NewServer returns the Agent API's HTTP handler.
func NewServer(d Deps) http.Handler {
	mux := http.NewServeMux()
	service.HealthRoutes(mux, d.Registry, service.PingCheck("postgres", d.DB))
	return mux
}

// Run starts the Agent API with cfg and serves until ctx ends: it migrates
// when configured to, connects as the ingest role (refusing a role that
// bypasses row-level security), keeps the time-series partitions ahead of
// time, and calls listening with the bound address once it accepts.
func Run(ctx context.Context, cfg service.Config, logger *slog.Logger, listening func(net.Addr)) error {
	db, err := service.OpenDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	reg := service.NewRegistry()
	maint := timeseries.NewMaintainer(db, logger, reg, 8, 3)
	if _, err := maint.RunOnce(ctx, time.Now()); err != nil {
		return err
	}
	l, err := service.Listen(cfg.Addr, "AGENT_API_ADDR")
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); maint.Run(ctx, time.Hour) }()
	defer wg.Wait()
	if listening != nil {
		listening(l.Addr())
	}
	logger.InfoContext(ctx, "agent api listening", "addr", l.Addr().String())
	return service.Serve(ctx, l, NewServer(Deps{DB: db, Logger: logger, Registry: reg}), logger)
}
