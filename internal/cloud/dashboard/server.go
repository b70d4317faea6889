package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/signin"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
)

// Config is the Dashboard API's configuration. Zero timings take the
// defaults of withDefaults, the one place they are set.
type Config struct {
	service.Config
	// StopTimeout bounds Run's Stop: the listener's graceful shutdown
	// (10 s) and the parts after it (default 30 s).
	StopTimeout time.Duration
	// CORSOrigins are the browser origins allowed to call the API
	// (DASHBOARD_CORS_ORIGINS; none by default).
	CORSOrigins []string
	// AdminDatabaseURL connects as the platform-admin role (staff_admin)
	// for ADMIN users' requests (DASHBOARD_ADMIN_DATABASE_URL; empty:
	// platform administrators are refused by this instance).
	AdminDatabaseURL string
	// TokenKeys sign and verify access tokens: the first signs, all verify
	// (DASHBOARD_TOKEN_KEYS). None: one random key made at start, so
	// tokens do not outlive the process (development only; logged).
	TokenKeys []accesstoken.Key
	// TokenIssuer is the access tokens' issuer and audience
	// (DASHBOARD_TOKEN_ISSUER, default DefaultTokenIssuer).
	TokenIssuer string
	// AccessTTL is an access token's lifetime (DASHBOARD_ACCESS_TTL,
	// default accesstoken.DefaultTTL, at most 15 min).
	AccessTTL time.Duration
	// SignIn is the sign-in policy: refresh-token lifetimes, the account
	// lockout and the per-address limit (zero fields: signin's defaults).
	SignIn signin.Config
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
	// Storage is the file store whose download URLs the API hands out
	// (STORAGE_*); with the local driver the API serves them itself at
	// the path of Storage.PublicURL. A zero Storage (no driver, no
	// directory): the download routes answer 503.
	Storage storage.Config
	// TimescaleURL, when set, is a separate time-series database as the
	// dashboard role (TIMESCALE_URL), and AdminTimescaleURL the same as
	// the platform-admin role (DASHBOARD_ADMIN_TIMESCALE_URL, required
	// with TimescaleURL and AdminDatabaseURL).
	TimescaleURL, AdminTimescaleURL string
}

// DefaultTokenIssuer is Config.TokenIssuer's default.
const DefaultTokenIssuer = "staffcontrol-dashboard"

// DefaultStopTimeout is Config.StopTimeout's default.
const DefaultStopTimeout = 30 * time.Second

// withDefaults returns cfg with every zero timing set to its default.
func (cfg Config) withDefaults() Config {
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.TokenIssuer == "" {
		cfg.TokenIssuer = DefaultTokenIssuer
	}
	return cfg
}

// ServerDeps are what New is given rather than builds.
type ServerDeps struct {
	// Logger is the server's logger (nil discards).
	Logger *slog.Logger
	// DB is the database as the dashboard role; nil: New opens it from cfg
	// (migrating when configured to) and Stop closes it.
	DB *pgxpool.Pool
	// AdminDB is the database as the platform-admin role; nil: New opens
	// it from cfg.AdminDatabaseURL when set.
	AdminDB *pgxpool.Pool
	// Registry receives the metrics (nil: a new service registry).
	Registry *prometheus.Registry
	// Listening is called with the bound address once the listener
	// accepts (optional).
	Listening func(net.Addr)
	// TracerProvider traces requests (issue 19); nil: no tracing.
	TracerProvider trace.TracerProvider
}

// Server is an assembled Dashboard API: New builds it without starting
// anything; Start starts its parts in order (the HTTP listener last); Stop
// stops them in reverse.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	db      *pgxpool.Pool
	handler http.Handler
	api     *API
	http    *service.Listener
	group   *lifecycle.Group

	owned service.OwnedPools // pools New opened, closed by Stop
}

// New assembles the Dashboard API from cfg: it opens the database when deps
// does not give it (refusing a role that bypasses row-level security) and
// builds the routes and the listener. It starts no goroutine.
func New(ctx context.Context, cfg Config, deps ServerDeps) (*Server, error) {
	cfg = cfg.withDefaults()
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, logger: logger, db: deps.DB}
	if s.db == nil {
		db, err := service.OpenDatabase(ctx, cfg.Config, logger)
		if err != nil {
			return nil, err
		}
		s.db = db
		s.owned.Own(db)
	}
	adminDB := deps.AdminDB
	if adminDB == nil && cfg.AdminDatabaseURL != "" {
		db, err := postgres.Connect(ctx, cfg.AdminDatabaseURL, 0, cfg.ContextKey)
		if err != nil {
			s.owned.Close()
			return nil, fmt.Errorf("DASHBOARD_ADMIN_DATABASE_URL: %w", err)
		}
		s.owned.Own(db)
		adminDB = db
	}
	registry := deps.Registry
	if registry == nil {
		registry = service.NewRegistry()
	}
	keys := cfg.TokenKeys
	if len(keys) == 0 {
		k, err := accesstoken.GenerateKey("ephemeral")
		if err != nil {
			s.owned.Close()
			return nil, err
		}
		keys = []accesstoken.Key{k}
		logger.Warn("DASHBOARD_TOKEN_KEYS is not set: access tokens are signed with a key made at start, so they end with this process and other instances refuse them")
	}
	tokens, err := accesstoken.New(accesstoken.Config{Issuer: cfg.TokenIssuer, Audience: cfg.TokenIssuer, TTL: cfg.AccessTTL, Keys: keys})
	if err != nil {
		s.owned.Close()
		return nil, fmt.Errorf("DASHBOARD_TOKEN_KEYS: %w", err)
	}
	sessions, err := signin.New(cfg.SignIn, signin.Deps{DB: s.db, Tokens: tokens, Logger: logger})
	if err != nil {
		s.owned.Close()
		return nil, fmt.Errorf("sign-in: %w", err)
	}
	apiDeps := Deps{DB: s.db, AdminDB: adminDB, Tokens: tokens, SignIn: sessions, TrustedProxies: cfg.TrustedProxies,
		Logger: logger, Registry: registry, CORSOrigins: cfg.CORSOrigins, FileURLTTL: cfg.Storage.URLTTL, TracerProvider: deps.TracerProvider}
	if err := s.openStores(ctx, cfg, &apiDeps); err != nil {
		s.owned.Close()
		return nil, err
	}
	api, err := NewAPI(apiDeps)
	if err != nil {
		s.owned.Close()
		return nil, err
	}
	s.api = api
	s.handler = api
	s.http = service.NewListener(service.ListenerConfig{Name: "dashboard api", Addr: cfg.Addr, AddrKey: "DASHBOARD_ADDR",
		Handler: s.handler, Logger: logger, Timeouts: cfg.HTTP, Listening: deps.Listening})
	s.group = lifecycle.NewGroup(logger, lifecycle.Member{Name: "http", Service: s.http},
		lifecycle.Member{Name: "live events", Service: api.Events()})
	return s, nil
}

// openStores opens what d reads besides the main database: the file
// store (its download URLs checked configured) and the separate
// time-series store's pools. Errors name the key at fault.
func (s *Server) openStores(ctx context.Context, cfg Config, d *Deps) error {
	if cfg.Storage.Driver != "" || cfg.Storage.BasePath != "" {
		if err := cfg.Storage.CheckURLs(); err != nil {
			return err
		}
		files, err := cfg.Storage.Open(ctx)
		if err != nil {
			return err
		}
		d.Files, d.FilesMount = files, cfg.Storage.MountPath()
	}
	if cfg.TimescaleURL == "" {
		return nil
	}
	if d.AdminDB != nil && cfg.AdminTimescaleURL == "" {
		return errors.New("DASHBOARD_ADMIN_TIMESCALE_URL is required with TIMESCALE_URL and DASHBOARD_ADMIN_DATABASE_URL: the time-series database as the platform-admin role")
	}
	// Not pinged: the API starts while the store is down (its reads
	// then fail until it is back).
	ts, err := postgres.ConnectLazy(ctx, cfg.TimescaleURL, 0, cfg.ContextKey)
	if err != nil {
		return fmt.Errorf("TIMESCALE_URL: %w", err)
	}
	s.owned.Own(ts)
	d.TimeseriesDB = ts
	if d.AdminDB != nil {
		if d.AdminTimeseriesDB, err = postgres.ConnectLazy(ctx, cfg.AdminTimescaleURL, 0, cfg.ContextKey); err != nil {
			return fmt.Errorf("DASHBOARD_ADMIN_TIMESCALE_URL: %w", err)
		}
		s.owned.Own(d.AdminTimeseriesDB)
	}
	return nil
}

// Start starts the parts in order; it returns once the listener accepts.
func (s *Server) Start(ctx context.Context) error {
	return s.group.Start(ctx)
}

// Stop stops the parts in reverse order (the listener gives in-flight
// requests up to 10 s) and closes the pool New opened. Stop without Start
// and a second Stop return nil.
func (s *Server) Stop(ctx context.Context) error {
	err := s.group.Stop(ctx)
	s.owned.Close()
	return err
}

// Addr is the listener's address once started (nil before).
func (s *Server) Addr() net.Addr { return s.http.Addr() }

// Handler is the routes table the listener serves.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes is the API's routes table.
func (s *Server) Routes() []Route { return s.api.Routes() }

// Failed is closed when the HTTP listener stops serving on its own (not by
// Stop); Stop reports the reason.
func (s *Server) Failed() <-chan struct{} { return s.http.Failed() }

// Run starts the Dashboard API with cfg and serves until ctx ends: New,
// Start, wait for ctx (or the listener failing), Stop. It migrates when
// configured to, connects as the dashboard role (refusing a role that
// bypasses row-level security) and calls listening with the bound address
// once it accepts.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, listening func(net.Addr)) error {
	return RunWith(ctx, cfg, ServerDeps{Logger: logger, Listening: listening})
}

// RunWith is Run with deps (a tracer provider, a logger, …).
func RunWith(ctx context.Context, cfg Config, deps ServerDeps) error {
	s, err := New(ctx, cfg, deps)
	if err != nil {
		return err
	}
	return service.RunUntil(ctx, s, s.Failed(), s.cfg.StopTimeout)
}
