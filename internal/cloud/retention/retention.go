// Package retention runs the retention of the monitoring time series: the
// per-organisation horizons of retention_policies and the global days of
// monitoring.retention, applied by one replica at a time (a PostgreSQL
// advisory lock held by the run's own connection), with an optional gzip
// CSV archive before deletion, a dry-run mode, and a record of every run
// (monitoring.retention_runs) and its metrics.
//
// A run, as the ingest role through the SECURITY DEFINER functions of
// migration 00027 (none takes a time from the caller):
//
//  1. retention_run_begin takes the lock on the run's connection (a skipped
//     run is recorded and counted when another replica holds it) and marks
//     failed the runs a killed process left running;
//  2. row by row, for each (organisation, series) whose horizon is shorter
//     than the global one or whose action is archive: batches of at most
//     Config.BatchSize rows, each in its own transaction — DELETE …
//     RETURNING through retention_delete, the batch archived (written and
//     closed) before the commit, then, after the commit, the batch's
//     screenshot files deleted (row first, file second: a kill in between
//     leaves only orphan files, which the screenshot sweep removes, never a
//     row pointing to a missing file);
//  3. globally, the partitions (or TimescaleDB chunks) wholly past the
//     series' global days are dropped through drop_expired_partitions (and
//     apply_retention), their rows counted first. Their screenshot files are
//     left to the screenshot sweep (ingest.Service.SweepScreenshots), which
//     removes unreferenced files an hour old: they are not counted here;
//  4. retention_run_finish records the outcome and releases the lock.
//
// A dry run takes the lock and records a run too, but only counts: the rows,
// files and bytes step 2 would delete and the rows step 3 would drop.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/retention/retentiondb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
)

// Tables returns the five time series a policy may name (resource_type),
// sorted.
func Tables() []string {
	return []string{"active_windows", "device_events", "screenshots", "user_sessions", "visited_sites"}
}

// MaxBatchSize is the most rows one transaction deletes (the database
// clamps to it too).
const MaxBatchSize = 10000

// Config is a Runner's tuning.
type Config struct {
	// BatchSize is the rows deleted per transaction (default and at most
	// MaxBatchSize).
	BatchSize int
	// BatchPause is a pause after each batch, to spread the load (default
	// none).
	BatchPause time.Duration
}

// Deps are what a Runner works with.
type Deps struct {
	// DB is the main database as the ingest role (staff_ingest).
	DB *pgxpool.Pool
	// Files is the file store of the screenshots and the archives.
	Files storage.Store
	// Logger receives a line per run (nil discards).
	Logger *slog.Logger
	// Registry receives the metrics (nil: not registered).
	Registry prometheus.Registerer
}

// Runner runs retention.
type Runner struct {
	db     *pgxpool.Pool
	files  storage.Store
	logger *slog.Logger
	cfg    Config

	runs        *prometheus.CounterVec
	rows        *prometheus.CounterVec
	filesTotal  prometheus.Counter
	bytesTotal  prometheus.Counter
	duration    prometheus.Histogram
	lastSuccess prometheus.Gauge
}

// New returns a Runner. It reads the time of the last successful run from
// the database so that the last-success metric survives a restart.
func New(ctx context.Context, deps Deps, cfg Config) (*Runner, error) {
	if deps.DB == nil || deps.Files == nil {
		return nil, errors.New("retention: a database and a file store are required")
	}
	if cfg.BatchSize <= 0 || cfg.BatchSize > MaxBatchSize {
		cfg.BatchSize = MaxBatchSize
	}
	if cfg.BatchPause < 0 {
		cfg.BatchPause = 0
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		db: deps.DB, files: deps.Files, logger: logger, cfg: cfg,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "retention_runs_total",
			Help: "Retention runs by outcome (succeeded, failed, skipped: another replica held the lock), dry runs included."}, []string{"status"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "retention_rows_deleted_total",
			Help: "Time-series rows deleted by retention (row by row and with dropped partitions), per series."}, []string{"table"}),
		filesTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "retention_files_deleted_total",
			Help: "Screenshot files deleted by retention with their rows."}),
		bytesTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "retention_bytes_deleted_total",
			Help: "Bytes of the screenshot files deleted by retention (as their rows recorded them)."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "retention_run_duration_seconds",
			Help: "Duration of retention runs that held the lock.", Buckets: prometheus.ExponentialBuckets(0.1, 4, 10)}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "retention_last_success_timestamp_seconds",
			Help: "Unix time the last successful retention run (not a dry run) finished; 0 when none has."}),
	}
	for _, st := range []string{StatusSucceeded, StatusFailed, StatusSkipped} {
		r.runs.WithLabelValues(st)
	}
	for _, t := range Tables() {
		r.rows.WithLabelValues(t)
	}
	if deps.Registry != nil {
		if err := registerAll(deps.Registry, r.runs, r.rows, r.filesTotal, r.bytesTotal, r.duration, r.lastSuccess); err != nil {
			return nil, err
		}
	}
	last, err := retentiondb.New(deps.DB).LastSuccess(ctx)
	if err != nil {
		return nil, fmt.Errorf("retention: last successful run: %w", err)
	}
	if len(last) == 1 && last[0] != nil {
		r.lastSuccess.Set(float64(last[0].Unix()))
	}
	return r, nil
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("retention: register metrics: %w", err)
		}
	}
	return nil
}

// Run statuses (monitoring.retention_runs.status).
const (
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
)

// Result is what one run did (or, dry, would do).
type Result struct {
	// RunID is the run's monitoring.retention_runs id.
	RunID int64
	// Status is succeeded, failed or skipped.
	Status string
	// DryRun is whether the run only counted.
	DryRun bool
	// Interrupted is how many runs killed processes left running this run
	// marked failed.
	Interrupted int
	// Rows is the rows deleted per series (both ways).
	Rows map[string]int64
	// Partitions names the partitions and chunks dropped (or that would be).
	Partitions []string
	// Files and Bytes are the screenshot files deleted with their rows and
	// their bytes.
	Files, Bytes int64
	// Archived is the archive objects written.
	Archived int
	// RollupRows is the report rollup rows (monitoring.activity_days and
	// activity_day_usage) of days past the horizons deleted.
	RollupRows int64
	// Duration is how long the run took.
	Duration time.Duration
}

// TotalRows is the sum of Rows.
func (r Result) TotalRows() int64 {
	var n int64
	for _, v := range r.Rows {
		n += v
	}
	return n
}

// Run runs retention once (dry: count only) and records it. A run that
// another replica's lock skips returns Status skipped and no error; a
// failed run is recorded failed and its error returned.
func (r *Runner) Run(ctx context.Context, dry bool) (Result, error) {
	start := time.Now()
	res := Result{DryRun: dry, Rows: map[string]int64{}}
	conn, err := r.db.Acquire(ctx)
	if err != nil {
		r.runs.WithLabelValues(StatusFailed).Inc()
		return res, fmt.Errorf("retention: connect: %w", err)
	}
	// The run's own connection, out of the pool: the session-level lock
	// goes with it when it closes, whatever happens to the run.
	pc := conn.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = pc.Close(cctx)
	}()
	q := retentiondb.New(pc)
	begin, err := q.RunBegin(ctx, dry)
	if err != nil {
		r.runs.WithLabelValues(StatusFailed).Inc()
		return res, fmt.Errorf("retention: begin run: %w", err)
	}
	res.RunID, res.Interrupted = begin.RunID, int(begin.Interrupted)
	if !begin.Acquired {
		res.Status = StatusSkipped
		r.runs.WithLabelValues(StatusSkipped).Inc()
		r.logger.InfoContext(ctx, "retention run skipped: another replica holds the lock", "run", res.RunID)
		return res, nil
	}
	if res.Interrupted > 0 {
		r.logger.WarnContext(ctx, "retention runs left running by a stopped process marked failed", "runs", res.Interrupted)
	}
	w := &work{r: r, conn: pc, q: q, res: &res}
	if dry {
		err = w.preview(ctx)
	} else {
		err = w.apply(ctx)
	}
	res.Duration = time.Since(start)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	status, ferr := q.RunFinish(fctx, retentiondb.RunFinishParams{RunID: res.RunID, Error: msg})
	if ferr != nil {
		// The record stays 'running'; the next run marks it failed.
		status = StatusFailed
		err = errors.Join(err, fmt.Errorf("retention: finish run %d: %w", res.RunID, ferr))
	}
	res.Status = status
	r.runs.WithLabelValues(status).Inc()
	r.duration.Observe(res.Duration.Seconds())
	if status == StatusSucceeded && !dry {
		r.lastSuccess.Set(float64(time.Now().Unix()))
	}
	tables := make([]string, 0, len(res.Rows))
	for t := range res.Rows {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	attrs := []any{"run", res.RunID, "dry_run", dry, "status", status, "rows", res.TotalRows(), "partitions", len(res.Partitions),
		"files", res.Files, "bytes", res.Bytes, "archived", res.Archived, "duration", res.Duration.Round(time.Millisecond).String()}
	for _, t := range tables {
		attrs = append(attrs, "rows_"+t, res.Rows[t])
	}
	if err != nil {
		r.logger.ErrorContext(ctx, "retention run failed", append(attrs, "err", err)...)
		return res, err
	}
	r.logger.InfoContext(ctx, "retention run", attrs...)
	return res, nil
}
