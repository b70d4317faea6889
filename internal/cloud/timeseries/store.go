package timeseries

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
)

// Mode is where time-series writes go.
type Mode int

// The modes of a Store.
const (
	// ModeNormal: writes go to the time-series store.
	ModeNormal Mode = iota
	// ModeFallback: the store failed FailureThreshold writes in a row;
	// writes go to the fallback partitions of the main database.
	ModeFallback
	// ModeResync: the store answers again; writes go to it while the
	// fallback rows are copied back.
	ModeResync
)

func (m Mode) String() string {
	return [...]string{"normal", "fallback", "resync"}[m]
}

// FailureThreshold is how many consecutive write failures switch a Store
// to fallback (the seed's figure).
const FailureThreshold = 3

// Store routes time-series writes between the time-series store and the
// fallback partitions of the main database, and runs the recovery probe and
// the re-sync: it is a lifecycle.Service whose Start and Stop start and
// stop the probe. With no separate store (TS and main are one database) it
// never falls back: if that database is down, so is everything else.
type Store struct {
	main     *pgxpool.Pool
	ts       *pgxpool.Pool
	separate bool
	logger   *slog.Logger
	probe    time.Duration
	chunk    int

	mu       sync.Mutex
	mode     Mode
	failures int

	modeGauge   *prometheus.GaugeVec
	failuresCtr prometheus.Counter
	activations prometheus.Counter
	resync      *ResyncCounters

	prober *lifecycle.Loop // ProbeOnce every probe, while started
}

// StoreConfig configures a Store.
type StoreConfig struct {
	// Main is the main database (as the ingest role); fallback rows live here.
	Main *pgxpool.Pool
	// TS is the time-series store; nil or equal to Main means the same database.
	TS *pgxpool.Pool
	// ProbeInterval is how often a fallen-back Store checks for recovery
	// (default 60 s).
	ProbeInterval time.Duration
	// ResyncChunk is how many rows a re-sync step copies (default 1,000).
	ResyncChunk int
	Logger      *slog.Logger
	Registry    prometheus.Registerer
}

// NewStore returns a Store in ModeNormal.
func NewStore(c StoreConfig) *Store {
	if c.TS == nil {
		c.TS = c.Main
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = time.Minute
	}
	if c.ResyncChunk <= 0 {
		c.ResyncChunk = 1000
	}
	s := &Store{
		main: c.Main, ts: c.TS, separate: c.TS != c.Main, logger: c.Logger, probe: c.ProbeInterval, chunk: c.ResyncChunk,
		modeGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "timeseries_store_mode",
			Help: "1 for the current mode of time-series writes (normal, fallback, resync), 0 for the others."}, []string{"mode"}),
		failuresCtr: prometheus.NewCounter(prometheus.CounterOpts{Name: "timeseries_write_failures_total",
			Help: "Writes the time-series store failed (connection or server errors)."}),
		activations: prometheus.NewCounter(prometheus.CounterOpts{Name: "timeseries_fallback_activations_total",
			Help: "Times writes switched to the fallback partitions."}),
		resync: NewResyncCounters(c.Registry),
	}
	s.prober = lifecycle.NewLoop("timeseries store probe", c.Logger, func(ctx context.Context) error {
		return lifecycle.Every(ctx, s.probe, false, s.ProbeOnce)
	})
	c.Registry.MustRegister(s.modeGauge, s.failuresCtr, s.activations)
	s.setModeLocked(ModeNormal)
	return s
}

// Main is the main database.
func (s *Store) Main() *pgxpool.Pool { return s.main }

// TS is the time-series store.
func (s *Store) TS() *pgxpool.Pool { return s.ts }

// Separate reports whether the time-series store is its own database.
func (s *Store) Separate() bool { return s.separate }

// Mode is the current mode.
func (s *Store) Mode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

func (s *Store) setModeLocked(m Mode) {
	s.mode = m
	for _, x := range []Mode{ModeNormal, ModeFallback, ModeResync} {
		v := 0.0
		if x == m {
			v = 1
		}
		s.modeGauge.WithLabelValues(x.String()).Set(v)
	}
}

// Succeeded records a successful write to the time-series store.
func (s *Store) Succeeded() {
	s.mu.Lock()
	s.failures = 0
	s.mu.Unlock()
}

// Failed records a failed write to the time-series store and reports
// whether writes now go to the fallback: true from the FailureThreshold-th
// consecutive failure on.
func (s *Store) Failed(ctx context.Context, err error) bool {
	s.failuresCtr.Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.separate {
		return false
	}
	s.failures++
	if s.mode != ModeFallback && s.failures >= FailureThreshold {
		s.setModeLocked(ModeFallback)
		s.activations.Inc()
		s.logger.ErrorContext(ctx, "time-series store failed; writing to fallback partitions",
			"alert", "timeseries_fallback_activated", "consecutive_failures", s.failures, "err", err)
	}
	return s.mode == ModeFallback
}

// IsStoreFailure tells a failure of the store (unreachable, shutting down,
// out of resources, timed out) from an error in the data, which falling
// back would not cure.
func IsStoreFailure(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "53", "57", "58", "XX":
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err) ||
		errors.As(err, new(*pgconn.ConnectError))
}

// Start starts the recovery probe: every ProbeInterval, while in
// fallback, the time-series store is probed; once it answers, writes return
// to it and the fallback rows are re-synced (ProbeOnce), after which the
// mode is normal again. With no separate store there is nothing to probe
// and Start starts nothing; otherwise starting twice, or after Stop, is an
// error.
func (s *Store) Start(ctx context.Context) error {
	if !s.separate {
		return nil
	}
	return s.prober.Start(ctx)
}

// Stop ends the probe (and a re-sync it is running, which resumes at the
// next start) and waits for it. Stop without Start and a second Stop
// return nil.
func (s *Store) Stop(ctx context.Context) error {
	return s.prober.Stop(ctx)
}

// ProbeOnce is one step of the probe: nothing in normal mode; in fallback,
// a ping of the time-series store (bounded by 5 s), which switches to
// re-sync when it answers; in re-sync, a re-sync of the fallback rows,
// which ends the fallback when it completes (an interrupted one resumes at
// the next step).
func (s *Store) ProbeOnce(ctx context.Context) {
	s.mu.Lock()
	mode := s.mode
	s.mu.Unlock()
	if mode == ModeNormal {
		return
	}
	if mode == ModeFallback {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.ts.Ping(pctx)
		cancel()
		if err != nil {
			s.logger.WarnContext(ctx, "time-series store still unavailable; staying in fallback", "err", err)
			return
		}
		s.mu.Lock()
		s.failures = 0
		s.setModeLocked(ModeResync)
		s.mu.Unlock()
		s.logger.InfoContext(ctx, "time-series store recovered; re-syncing fallback rows")
	}
	res, err := Resync(ctx, s.main, s.ts, s.chunk, s.resync)
	if err != nil {
		s.logger.ErrorContext(ctx, "re-sync interrupted; will resume", "err", err, "copied", res.Copied)
		return
	}
	s.mu.Lock()
	if s.mode == ModeResync {
		s.setModeLocked(ModeNormal)
	}
	s.mu.Unlock()
	s.logger.InfoContext(ctx, "re-sync complete; fallback mode ended", "copied", res.Copied, "verified_chunks", res.Chunks)
}
