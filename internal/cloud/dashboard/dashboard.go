// Package dashboard is the Dashboard API (:3000) used by HR, department
// leads and administrators. Every request that touches tenant data runs in
// one transaction with the caller's organisation and role set
// (postgres.InTenant); row-level security does the filtering.
//
// New assembles the API without starting anything; Start starts its parts
// as a lifecycle.Group (today the HTTP listener alone), Stop stops them in
// reverse; Run is New + Start + wait + Stop.
package dashboard

import (
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
)

// Deps are the dependencies of the Dashboard API's routes.
type Deps struct {
	DB       *pgxpool.Pool // as the dashboard role
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// CORSOrigins are the browser origins allowed to call the API.
	CORSOrigins []string
}

// NewServer returns the Dashboard API's HTTP handler: its routes table,
// behind the request-id, security-header and CORS middleware.
func NewServer(d Deps) http.Handler {
	mux := http.NewServeMux()
	service.HealthRoutes(mux, d.Registry, service.PingCheck("postgres", d.DB))
	// Every answer carries a request id (the error shape's request_id,
	// issue 14) and the API's security headers.
	return service.RequestID(service.SecurityHeaders(service.CORS(d.CORSOrigins)(mux)))
}
