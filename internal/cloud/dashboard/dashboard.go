// Package dashboard is the Dashboard API (:3000) used by HR, department
// leads and administrators. Every request that touches tenant data runs in
// one transaction with the caller's organisation and role set
// (postgres.InTenant); row-level security does the filtering.
package dashboard

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
)

// Deps are the Dashboard API's dependencies.
type Deps struct {
	DB       *pgxpool.Pool // as the dashboard role
	Logger   *slog.Logger
	Registry *prometheus.Registry
}

// NewServer returns the Dashboard API's HTTP handler.
func NewServer(d Deps) http.Handler {
	mux := http.NewServeMux()
	service.HealthRoutes(mux, d.Registry, service.PingCheck("postgres", d.DB))
	return mux
}

// Run starts the Dashboard API with cfg and serves until ctx ends: it
// migrates when configured to, connects as the dashboard role (refusing a
// role that bypasses row-level security) and calls listening with the bound
// address once it accepts.
func Run(ctx context.Context, cfg service.Config, logger *slog.Logger, listening func(net.Addr)) error {
	db, err := service.OpenDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	l, err := service.Listen(cfg.Addr, "DASHBOARD_ADDR")
	if err != nil {
		return err
	}
	if listening != nil {
		listening(l.Addr())
	}
	logger.InfoContext(ctx, "dashboard api listening", "addr", l.Addr().String())
	return service.Serve(ctx, l, NewServer(Deps{DB: db, Logger: logger, Registry: service.NewRegistry()}), logger, cfg.HTTP)
}
