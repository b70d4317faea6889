package agentapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/report"
	"github.com/staffcontrol/staffcontrol/internal/cloud/retention"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// Config is the Agent API's configuration. Zero timings and sizes take the
// defaults of withDefaults, the one place they are set.
type Config struct {
	service.Config
	// Storage is the file store screenshots are written to (STORAGE_*:
	// the local driver under STORAGE_BASE_PATH by default, or S3).
	Storage storage.Config
	// TimescaleURL, when set, is a separate time-series database (as the
	// ingest role) with fallback to the main database (TIMESCALE_URL).
	TimescaleURL string
	// ProbeInterval is how often a fallen-back store is probed
	// (TIMESCALE_PROBE_INTERVAL, default 60 s).
	ProbeInterval time.Duration
	// TLS is the optional (mutual) TLS of the listener.
	TLS service.TLSConfig
	// Throttle limits failed API keys and provisioning tokens
	// (THROTTLE_*, TRUSTED_PROXIES).
	Throttle service.ThrottleConfig
	// Control is the control hub's and the command sweeper's timings (zero
	// fields: the hub's defaults).
	Control control.Options
	// Queue is the command queue's timings (zero fields: the queue's
	// defaults; a nil Logger is the server's).
	Queue commandqueue.Options

	// MaintenanceInterval is how often the partition maintenance (and the
	// TimescaleDB job check) runs (default 1 h).
	MaintenanceInterval time.Duration
	// PartitionsBehind and PartitionsAhead are the days of partitions kept
	// created before and after today (defaults 8 and 3).
	PartitionsBehind, PartitionsAhead int
	// AdvanceInterval is how often the distributions an advance would move
	// now (policy_distributions_ready) are moved on (default 250 ms), and
	// AdvanceAllInterval how often every active one is, whatever that says
	// (default 30 s).
	AdvanceInterval, AdvanceAllInterval time.Duration
	// ScreenshotSweepInterval is how often orphan screenshot files are
	// looked for (default 1 h), and ScreenshotSweepAge how old one must be
	// to go (default 1 h: far past any upload in flight, which writes its
	// files just before its rows).
	ScreenshotSweepInterval, ScreenshotSweepAge time.Duration
	// RetentionInterval is how often retention runs (RETENTION_INTERVAL,
	// default 1 h); one replica at a time, the others' runs are skipped.
	RetentionInterval time.Duration
	// RetentionDryRun makes every run only count what it would delete
	// (RETENTION_DRY_RUN); the partition maintainer then keeps dropping
	// the expired partitions itself, as before retention existed.
	RetentionDryRun bool
	// Retention is the retention runs' tuning (zero: its defaults).
	Retention retention.Config
	// RollupInterval is how often the reports' activity rollups are brought
	// up to date from the dirty hours (ROLLUP_INTERVAL, default 1 min).
	RollupInterval time.Duration
	// QueueDepthInterval is how often the command queue's depth is sampled
	// into command_queue_depth and command_queue_oldest_seconds (default
	// 15 s, a Prometheus scrape interval).
	QueueDepthInterval time.Duration
}

// Defaults of Config's timings and sizes.
const (
	DefaultMaintenanceInterval     = time.Hour
	DefaultPartitionsBehind        = 8
	DefaultPartitionsAhead         = 3
	DefaultAdvanceInterval         = 250 * time.Millisecond
	DefaultAdvanceAllInterval      = 30 * time.Second
	DefaultScreenshotSweepInterval = time.Hour
	DefaultScreenshotSweepAge      = time.Hour
	DefaultRetentionInterval       = time.Hour
	DefaultRollupInterval          = report.DefaultRollupInterval
	DefaultQueueDepthInterval      = 15 * time.Second
)

// withDefaults returns cfg with every zero timing and size set to its
// default.
func (cfg Config) withDefaults() Config {
	if cfg.MaintenanceInterval <= 0 {
		cfg.MaintenanceInterval = DefaultMaintenanceInterval
	}
	if cfg.PartitionsBehind <= 0 {
		cfg.PartitionsBehind = DefaultPartitionsBehind
	}
	if cfg.PartitionsAhead <= 0 {
		cfg.PartitionsAhead = DefaultPartitionsAhead
	}
	if cfg.AdvanceInterval <= 0 {
		cfg.AdvanceInterval = DefaultAdvanceInterval
	}
	if cfg.AdvanceAllInterval <= 0 {
		cfg.AdvanceAllInterval = DefaultAdvanceAllInterval
	}
	if cfg.QueueDepthInterval <= 0 {
		cfg.QueueDepthInterval = DefaultQueueDepthInterval
	}
	if cfg.ScreenshotSweepInterval <= 0 {
		cfg.ScreenshotSweepInterval = DefaultScreenshotSweepInterval
	}
	if cfg.ScreenshotSweepAge <= 0 {
		cfg.ScreenshotSweepAge = DefaultScreenshotSweepAge
	}
	if cfg.RetentionInterval <= 0 {
		cfg.RetentionInterval = DefaultRetentionInterval
	}
	if cfg.RollupInterval <= 0 {
		cfg.RollupInterval = DefaultRollupInterval
	}
	return cfg
}

// ServerDeps are what New is given rather than builds.
type ServerDeps struct {
	// Logger is the server's logger (nil discards).
	Logger *slog.Logger
	// DB is the main database as the ingest role; nil: New opens it from
	// cfg (migrating when configured to) and Stop closes it.
	DB *pgxpool.Pool
	// TimeseriesDB is the separate time-series store; nil: opened from
	// cfg.TimescaleURL when set (and closed by Stop), else the main one.
	TimeseriesDB *pgxpool.Pool
	// Registry receives the metrics (nil: a new service registry).
	Registry *prometheus.Registry
	// Listening is called with the bound address once the listener
	// accepts (optional).
	Listening func(net.Addr)
	// TracerProvider traces ingest and the control channel's commands
	// (issue 19); nil: no tracing.
	TracerProvider trace.TracerProvider
}

// Server is an assembled Agent API: New builds every part without starting
// anything; Start runs the start-up step and starts the parts in
// dependency order, the HTTP listener last; Stop stops them in reverse.
type Server struct {
	cfg    Config
	logger *slog.Logger

	// The parts, exported for tests and harnesses through Parts.
	db       *pgxpool.Pool
	tsDB     *pgxpool.Pool
	registry *prometheus.Registry
	store    *timeseries.Store
	maint    *timeseries.Maintainer
	rollups  []*report.Maintainer
	ingest   *ingest.Service
	queue    *commandqueue.Queue
	gateways *auth.Gateways
	hub      *control.Hub
	sweeper  *control.Sweeper
	depth    *commandqueue.DepthSampler
	dist     *policy.Distributor
	throttle *throttle.Limiter
	retain   *retention.Runner
	handler  http.Handler

	group *lifecycle.Group
	http  *service.Listener
	owned service.OwnedPools // pools New opened, closed by Stop
}

// Parts are the assembled parts of a Server, for tests and harnesses that
// act on them directly (enqueue a command, read the store).
type Parts struct {
	DB       *pgxpool.Pool
	Registry *prometheus.Registry
	Store    *timeseries.Store
	Ingest   *ingest.Service
	Queue    *commandqueue.Queue
	Gateways *auth.Gateways
	Hub      *control.Hub
	Sweeper  *control.Sweeper
	Handler  http.Handler
}

// New assembles the Agent API from cfg: it checks the file store, opens the
// databases not given in deps (refusing a role that bypasses row-level
// security or a context key the database does not verify) and builds every
// part. It starts no goroutine of its own; on error, what it opened is
// closed.
func New(ctx context.Context, cfg Config, deps ServerDeps) (_ *Server, err error) {
	cfg = cfg.withDefaults()
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Storage.Driver != storage.DriverS3 && cfg.Storage.BasePath == "" {
		return nil, fmt.Errorf("%s is required: the directory where screenshots are stored", storage.KeyBasePath)
	}
	files, err := cfg.Storage.Open(ctx)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: logger, db: deps.DB, tsDB: deps.TimeseriesDB, registry: deps.Registry}
	defer func() {
		if err != nil {
			s.owned.Close()
		}
	}()
	if s.db == nil {
		if s.db, err = service.OpenDatabase(ctx, cfg.Config, logger); err != nil {
			return nil, err
		}
		s.owned.Own(s.db)
	}
	if s.registry == nil {
		s.registry = service.NewRegistry()
	}
	s.maint = timeseries.NewMaintainer(s.db, logger, s.registry, cfg.PartitionsBehind, cfg.PartitionsAhead)
	if !cfg.RetentionDryRun {
		// Retention drops the main database's expired partitions, counting
		// their rows, after the per-organisation deletes.
		s.maint.LeaveDropsToRetention()
	}
	if s.retain, err = retention.New(ctx, retention.Deps{DB: s.db, Files: files, Logger: logger, Registry: s.registry}, cfg.Retention); err != nil {
		return nil, err
	}
	if s.tsDB == nil && cfg.TimescaleURL != "" {
		// Not pinged: the Agent API starts while the store is down, and
		// writes fall back after three failures.
		if s.tsDB, err = postgres.ConnectLazy(ctx, cfg.TimescaleURL, 0, cfg.ContextKey); err != nil {
			return nil, fmt.Errorf("TIMESCALE_URL: %w", err)
		}
		s.owned.Own(s.tsDB)
	}
	tsPool := s.db
	if s.tsDB != nil {
		tsPool = s.tsDB
		// The store's partitions and TimescaleDB jobs are maintained too.
		s.maint.UseStore(s.tsDB)
	}
	// The reports' rollups, in the database of the rows: the store's (the
	// main database's zones), and the main one's own for its fallback rows
	// when the store is separate.
	rollupCfg := report.MaintainerConfig{Interval: cfg.RollupInterval, Logger: logger, Metrics: report.NewMaintainerMetrics(s.registry), Store: "main"}
	if tsPool != s.db {
		tsCfg := rollupCfg
		tsCfg.Store = "timeseries"
		s.rollups = []*report.Maintainer{report.NewMaintainer(tsPool, s.db, tsCfg), report.NewMaintainer(s.db, nil, rollupCfg)}
	} else {
		s.rollups = []*report.Maintainer{report.NewMaintainer(tsPool, s.db, rollupCfg)}
	}
	s.store = timeseries.NewStore(timeseries.StoreConfig{Main: s.db, TS: tsPool, ProbeInterval: cfg.ProbeInterval, Logger: logger, Registry: s.registry})
	if s.ingest, err = ingest.New(ingest.Deps{Store: s.store, Files: files, Logger: logger, Registry: s.registry, TracerProvider: deps.TracerProvider}); err != nil {
		return nil, err
	}
	qopts := cfg.Queue
	if qopts.Logger == nil {
		qopts.Logger = logger
	}
	if s.queue, err = commandqueue.New(s.db, qopts, s.registry); err != nil {
		return nil, err
	}
	s.gateways = auth.NewGateways(s.db)
	copts := cfg.Control
	copts.TracerProvider = deps.TracerProvider
	s.hub = control.New(s.db, s.gateways, s.queue, logger, s.registry, copts)
	if s.sweeper, err = control.NewSweeper(s.db, s.queue, logger, s.registry, cfg.Control); err != nil {
		return nil, err
	}
	s.depth = commandqueue.NewDepthSampler(s.db, s.registry, nil)
	s.dist = policy.NewDistributor(s.db, s.queue)
	if s.throttle, err = throttle.New(cfg.Throttle.Limits, throttle.Deps{Logger: logger, Registerer: s.registry}); err != nil {
		return nil, err
	}
	var tlsConfig *tls.Config
	if cfg.TLS.Enabled() {
		if tlsConfig, err = cfg.TLS.Build(); err != nil {
			return nil, err
		}
	}
	s.handler = NewServer(Deps{DB: s.db, Logger: logger, Registry: s.registry, Gateways: s.gateways, Ingest: s.ingest, Control: s.hub,
		Throttle: s.throttle, TrustedProxies: cfg.Throttle.TrustedProxies, Checks: dependencyChecks(s.tsDB, files)})
	s.http = service.NewListener(service.ListenerConfig{Name: "agent api", Addr: cfg.Addr, AddrKey: "AGENT_API_ADDR",
		TLS: tlsConfig, Handler: s.handler, Logger: logger, Timeouts: cfg.HTTP, Listening: deps.Listening})
	s.group = lifecycle.NewGroup(logger, s.members()...)
	return s, nil
}

// dependencyChecks are the Agent API's dependencies beside the main
// database, all optional for readiness: the time-series store when it is
// separate (timescaledb; writes fall back to the main database while it is
// down) and the file store (storage; a miss is an answer, any other error
// is not).
func dependencyChecks(tsDB *pgxpool.Pool, files storage.Store) []service.Check {
	var checks []service.Check
	if tsDB != nil {
		checks = append(checks, service.Check{Name: "timescaledb", Run: tsDB.Ping, Optional: true})
	}
	if files != nil {
		checks = append(checks, service.Check{Name: "storage", Optional: true, Run: func(ctx context.Context) error {
			rc, err := files.Get(ctx, "health/probe")
			if err == nil {
				return rc.Close()
			}
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return err
		}})
	}
	return checks
}

// members are the parts in dependency order: the store before the ingest
// that writes through it, the queue's consumers before what enqueues, the
// HTTP listener last.
func (s *Server) members() []lifecycle.Member {
	cfg := s.cfg
	loop := func(name string, fn func(ctx context.Context) error) lifecycle.Member {
		return lifecycle.Member{Name: name, Service: lifecycle.NewLoop(name, s.logger, fn)}
	}
	return []lifecycle.Member{
		{Name: "timeseries store", Service: s.store},
		loop("partition maintainer", func(ctx context.Context) error {
			return lifecycle.Every(ctx, cfg.MaintenanceInterval, true, func(ctx context.Context) {
				if _, err := s.maint.RunOnce(ctx); err != nil && ctx.Err() == nil {
					s.logger.ErrorContext(ctx, "partition maintenance failed", "err", err)
				}
			})
		}),
		{Name: "rollup maintainer", Service: s.rollupGroup()},
		// Orphan screenshot files (an upload whose outcome was unknown,
		// rows that retention deleted) are removed once old enough.
		loop("screenshot sweep", func(ctx context.Context) error {
			return lifecycle.Every(ctx, cfg.ScreenshotSweepInterval, false, func(ctx context.Context) {
				if _, err := s.ingest.SweepScreenshots(ctx, time.Now(), cfg.ScreenshotSweepAge); err != nil && ctx.Err() == nil {
					s.logger.ErrorContext(ctx, "screenshot sweep failed", "err", err)
				}
			})
		}),
		// Retention: one replica at a time (the others' runs are skipped).
		loop("retention", func(ctx context.Context) error {
			return lifecycle.Every(ctx, cfg.RetentionInterval, false, func(ctx context.Context) {
				if _, err := s.retain.Run(ctx, cfg.RetentionDryRun); err != nil && ctx.Err() == nil {
					s.logger.ErrorContext(ctx, "retention run failed", "err", err)
				}
			})
		}),
		loop("control hub", func(ctx context.Context) error { s.hub.Run(ctx); return nil }),
		{Name: "command sweeper", Service: s.sweeper},
		// The queue's depth over every organisation, for the backlog alert.
		loop("queue depth", func(ctx context.Context) error {
			return lifecycle.Every(ctx, cfg.QueueDepthInterval, true, func(ctx context.Context) {
				if _, err := s.depth.Sample(ctx); err != nil && ctx.Err() == nil {
					s.logger.ErrorContext(ctx, "sample the command queue depth", "err", err)
				}
			})
		}),
		loop("distribution advancer", func(ctx context.Context) error {
			return lifecycle.Every(ctx, cfg.AdvanceInterval, false, func(ctx context.Context) {
				if err := s.dist.AdvanceReady(ctx); err != nil && ctx.Err() == nil {
					s.logger.ErrorContext(ctx, "advance policy distributions", "err", err)
				}
			})
		}),
		loop("distribution advancer (all)", func(ctx context.Context) error {
			return lifecycle.Every(ctx, cfg.AdvanceAllInterval, false, func(ctx context.Context) {
				if err := s.dist.AdvanceAll(ctx); err != nil && ctx.Err() == nil {
					s.logger.ErrorContext(ctx, "advance policy distributions", "err", err)
				}
			})
		}),
		{Name: "http", Service: s.http},
	}
}

// rollupGroup runs the rollup maintainers as one member.
func (s *Server) rollupGroup() *lifecycle.Group {
	members := make([]lifecycle.Member, len(s.rollups))
	for i, m := range s.rollups {
		members[i] = lifecycle.Member{Name: fmt.Sprintf("rollups %d", i), Service: m}
	}
	return lifecycle.NewGroup(s.logger, members...)
}

// Start runs the start-up step — the partitions, before serving (the
// TimescaleDB policies, which can take minutes, run in the background
// maintenance) — then starts the parts in dependency order, the HTTP
// listener last. It returns once the listener accepts.
func (s *Server) Start(ctx context.Context) error {
	if _, err := s.maint.RunPartitions(ctx); err != nil {
		return err
	}
	return s.group.Start(ctx)
}

// Stop stops the parts in reverse order (the listener first, giving
// in-flight requests up to 10 s) and closes the pools New opened. Stop
// without Start and a second Stop return nil.
func (s *Server) Stop(ctx context.Context) error {
	err := s.group.Stop(ctx)
	s.owned.Close()
	return err
}

// Addr is the listener's address once started (nil before).
func (s *Server) Addr() net.Addr { return s.http.Addr() }

// Failed is closed when the HTTP listener stops serving on its own (not by
// Stop); Stop reports the reason.
func (s *Server) Failed() <-chan struct{} { return s.http.Failed() }

// Parts returns the assembled parts.
func (s *Server) Parts() Parts {
	return Parts{DB: s.db, Registry: s.registry, Store: s.store, Ingest: s.ingest, Queue: s.queue, Gateways: s.gateways,
		Hub: s.hub, Sweeper: s.sweeper, Handler: s.handler}
}

// Run starts the Agent API with cfg and serves until ctx ends: New, Start,
// wait for ctx (or the listener failing), Stop. It migrates when configured
// to, connects as the ingest role (refusing a role that bypasses row-level
// security), keeps the time-series partitions ahead of time, and calls
// listening with the bound address once it accepts.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, listening func(net.Addr)) error {
	return RunWith(ctx, cfg, ServerDeps{Logger: logger, Listening: listening})
}

// RunWith is Run with deps (a tracer provider, a logger, …).
func RunWith(ctx context.Context, cfg Config, deps ServerDeps) error {
	s, err := New(ctx, cfg, deps)
	if err != nil {
		return err
	}
	return service.RunUntil(ctx, s, s.Failed(), stopTimeout)
}

// stopTimeout bounds Run's Stop: the listener's graceful shutdown (10 s)
// and the parts after it.
const stopTimeout = 30 * time.Second
