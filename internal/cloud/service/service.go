// Package service provides what every cloud HTTP service shares: the
// health, readiness and Prometheus endpoints, the runtime-role safety check,
// and serving with a graceful shutdown.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service/servicedb"
	"github.com/staffcontrol/staffcontrol/internal/slowbody"
)

// Check is one dependency of a service, probed by GET /health/ready and at
// every scrape of /metrics (dependency_up{dependency=Name}).
type Check struct {
	Name string
	Run  func(ctx context.Context) error
	// Optional: a failure is reported (dependency_up 0, listed in the
	// readiness answer) but does not make the service unready — the
	// service keeps serving without it (e.g. the time-series store, whose
	// writes fall back to the main database).
	Optional bool
}

// checkTimeout bounds one round of checks (readiness or a scrape).
const checkTimeout = 2 * time.Second

// PingCheck is a readiness check that the database answers.
func PingCheck(name string, db *pgxpool.Pool) Check {
	return Check{Name: name, Run: func(ctx context.Context) error {
		if db == nil {
			return errors.New("no database configured")
		}
		return db.Ping(ctx)
	}}
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors. Each service owns its registry; nothing uses the global one.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// HealthPatterns are the mux patterns HealthRoutes adds.
func HealthPatterns() []string {
	return []string{"GET /health", "GET /health/ready", "GET /metrics"}
}

// HealthRoutes adds GET /health (the process is alive), GET /health/ready
// (every required check passes within 2 s; 503 with the failures
// otherwise) and GET /metrics to mux, and registers dependency_up, which
// runs the checks at each scrape.
func HealthRoutes(mux *http.ServeMux, reg *prometheus.Registry, checks ...Check) {
	// The collector's descriptors are fixed: the one possible error is a
	// second HealthRoutes on the same registry, whose first collector
	// already reports the same checks.
	_ = reg.Register(&dependencyCollector{checks: checks})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /health/ready", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		failures, degraded := map[string]string{}, map[string]string{}
		for _, c := range checks {
			if err := c.Run(ctx); err != nil {
				if c.Optional {
					degraded[c.Name] = err.Error()
				} else {
					failures[c.Name] = err.Error()
				}
			}
		}
		if len(failures) > 0 {
			WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "failures": failures})
			return
		}
		if len(degraded) > 0 {
			WriteJSON(w, http.StatusOK, map[string]any{"status": "ready", "degraded": degraded})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// WriteJSON writes v as a JSON response with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// CheckRuntimeRole refuses a database connection whose role would bypass
// row-level security (a superuser or a BYPASSRLS role): a service running
// so would silently serve every organisation's rows. envKey names the
// configuration key for the error message.
func CheckRuntimeRole(ctx context.Context, db *pgxpool.Pool, envKey string) error {
	r, err := servicedb.New(db).RuntimeRole(ctx)
	if err != nil {
		return fmt.Errorf("%s: check role: %w", envKey, err)
	}
	if r.Bypass {
		return fmt.Errorf("%s connects as %q, a superuser or BYPASSRLS role: row-level security would not apply; connect as the service's runtime role", envKey, r.UserName)
	}
	return nil
}

// Listen opens a TCP listener, naming the configuration key on failure.
func Listen(addr, key string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", key, addr, err)
	}
	return l, nil
}

// Serve serves h on l until ctx ends, then shuts down gracefully, giving
// in-flight requests up to 10 s. t bounds every step of a request (zero
// fields take their defaults): the headers, the body's minimum rate (a
// slower body is cut off with 408, see internal/slowbody), the answer and
// an idle keep-alive. There is no fixed whole-request read timeout, so a
// large upload at the minimum rate passes.
func Serve(ctx context.Context, l net.Listener, h http.Handler, logger *slog.Logger, t HTTPTimeouts) error {
	t = t.WithDefaults()
	h = slowbody.Handler(h, slowbody.Options{MinRate: t.BodyMinRate, Grace: t.BodyGrace, WriteTimeout: t.Write,
		OnCutOff: func(r *http.Request, received int64) {
			logger.WarnContext(r.Context(), "request body too slow; cut off", "method", r.Method, "path", r.URL.Path,
				"remote", r.RemoteAddr, "received_bytes", received)
		}})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown %s: %w", l.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// OpenDatabase prepares a service's database: it applies migrations and
// installs the tenant context key first when cfg.MigrateURL is set,
// connects to cfg.DatabaseURL, refuses a role that bypasses row-level
// security, and checks that the database verifies contexts signed with
// cfg.ContextKey.
func OpenDatabase(ctx context.Context, cfg Config, logger *slog.Logger) (*pgxpool.Pool, error) {
	if cfg.MigrateURL != "" {
		if _, err := postgres.MigrateUp(ctx, cfg.MigrateURL, logger); err != nil {
			return nil, fmt.Errorf("%s: %w", KeyMigrateURL, err)
		}
		if err := postgres.InstallContextKey(ctx, cfg.MigrateURL, cfg.ContextKey); err != nil {
			return nil, fmt.Errorf("%s: %w", KeyMigrateURL, err)
		}
	}
	db, err := postgres.Connect(ctx, cfg.DatabaseURL, 0, cfg.ContextKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyDatabaseURL, err)
	}
	if err := CheckRuntimeRole(ctx, db, KeyDatabaseURL); err != nil {
		db.Close()
		return nil, err
	}
	if err := CheckContextKey(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// CheckContextKey refuses to start when the database does not verify the
// contexts db signs (the key of TENANT_CONTEXT_KEY is not installed, or
// another key of the same id is): every tenant query would match nothing.
func CheckContextKey(ctx context.Context, db *pgxpool.Pool) error {
	var verified bool
	err := postgres.InTenant(ctx, db, postgres.Tenant{Role: postgres.AppEmployee, Actor: "start-up check"}, func(tx pgx.Tx) error {
		var err error
		verified, err = servicedb.New(tx).ContextVerified(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: check the key against the database: %w", KeyContextKey, err)
	}
	if !verified {
		return fmt.Errorf("%s: the database does not verify contexts signed with this key (install it: staffctl migrate up or staffctl tenant-key install, with the same %s)", KeyContextKey, KeyContextKey)
	}
	return nil
}
