package timeseries

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/sqlfile"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries/timeseriesdb"
)

// The kinds of TimescaleDB jobs monitoring.job_health() reports.
const (
	// JobRetention is a retention policy (drop chunks past the table's
	// retention).
	JobRetention = "retention"
	// JobCompression is a compression (columnstore) policy.
	JobCompression = "compression"
	// JobRefresh is the continuous aggregate's refresh policy.
	JobRefresh = "refresh"
)

// JobHealth is one TimescaleDB job of schema monitoring as
// monitoring.job_health() reports it (nothing on native partitions).
type JobHealth struct {
	// JobID is TimescaleDB's job id; 0 for a table whose retention policy
	// is missing (reported overdue).
	JobID int32
	// Kind is JobRetention, JobCompression or JobRefresh.
	Kind string
	// Table is the hypertable, or the continuous aggregate for JobRefresh.
	Table string
	// ScheduleInterval is the job's schedule (0 when the job is missing).
	ScheduleInterval time.Duration
	// Scheduled is false for a paused (or missing) job.
	Scheduled bool
	// LastRun, LastSuccess and NextStart are zero when unknown or never.
	LastRun, LastSuccess, NextStart time.Time
	// LastRunStatus is "Success", "Failed" or "" (never ran).
	LastRunStatus string
	// TotalRuns and TotalFailures count the scheduler's runs of the job.
	TotalRuns, TotalFailures int64
	// ConsecutiveFailures counts the failed runs since the last success.
	ConsecutiveFailures int32
	// Failing: the last run failed.
	Failing bool
	// Overdue: paused, missing, not started more than an hour after its
	// next start, or last successful longer ago than its schedule interval
	// plus an hour.
	Overdue bool
	// MaintainerLastRun is when the maintainer last did the policy's work
	// itself (zero: never).
	MaintainerLastRun time.Time
}

// NotRunning reports whether the scheduler is not running the job: its
// last run failed or it is overdue.
func (h JobHealth) NotRunning() bool { return h.Failing || h.Overdue }

// PolicyLastRun is when the policy's work was last done, by the scheduler
// or by the maintainer (zero: never).
func (h JobHealth) PolicyLastRun() time.Time {
	if h.MaintainerLastRun.After(h.LastSuccess) {
		return h.MaintainerLastRun
	}
	return h.LastSuccess
}

func (h JobHealth) why() string {
	var r []string
	if h.JobID == 0 {
		return "no policy"
	}
	if h.Failing {
		r = append(r, fmt.Sprintf("last run failed, %d in a row", h.ConsecutiveFailures))
	}
	if h.Overdue {
		if !h.Scheduled {
			r = append(r, "paused")
		} else {
			r = append(r, "overdue")
		}
	}
	return strings.Join(r, ", ")
}

// PolicyRun is a policy the maintainer ran itself because the scheduler
// did not (its job was failing or overdue).
type PolicyRun struct {
	// Kind is JobRetention or JobCompression.
	Kind string
	// Table is the hypertable.
	Table string
	// Job is the job that was not running (its JobID 0: no policy).
	Job JobHealth
	// Chunks are the chunks dropped (retention) or compressed.
	Chunks []string
}

// jobWatcher reads monitoring.job_health(), runs the retention and
// compression policies whose jobs are not running, and exports the jobs'
// health as metrics (a snapshot refreshed on every maintenance run).
type jobWatcher struct {
	logger *slog.Logger

	mu      sync.Mutex
	db      *pgxpool.Pool
	jobs    []JobHealth
	checked time.Time

	runs       *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	compressed *prometheus.CounterVec

	lastRun, lastSuccess, nextStart, failed, consecutive, runsTotal, failuresTotal,
	overdue, scheduled, interval, policyLastRun, policyInterval, checkedAt *prometheus.Desc
}

func newJobWatcher(db *pgxpool.Pool, logger *slog.Logger, reg prometheus.Registerer) *jobWatcher {
	l := []string{"job", "kind", "table"}
	p := []string{"kind", "table"}
	w := &jobWatcher{
		db: db, logger: logger,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "timeseries_jobs_run_by_maintainer_total",
			Help: "TimescaleDB policies the maintainer ran itself because their job was failing or overdue."}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "timeseries_chunks_dropped_by_maintainer_total",
			Help: "Chunks past retention the maintainer dropped in place of a retention job that was not running."}, []string{"table"}),
		compressed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "timeseries_chunks_compressed_by_maintainer_total",
			Help: "Chunks the maintainer compressed in place of a compression job that was not running."}, []string{"table"}),
		lastRun:       prometheus.NewDesc("timeseries_job_last_run_timestamp_seconds", "Start of the TimescaleDB job's last run by the scheduler.", l, nil),
		lastSuccess:   prometheus.NewDesc("timeseries_job_last_success_timestamp_seconds", "End of the TimescaleDB job's last successful run (0: never).", l, nil),
		nextStart:     prometheus.NewDesc("timeseries_job_next_start_timestamp_seconds", "When the scheduler will next start the TimescaleDB job.", l, nil),
		failed:        prometheus.NewDesc("timeseries_job_last_run_failed", "1 when the TimescaleDB job's last run failed.", l, nil),
		consecutive:   prometheus.NewDesc("timeseries_job_consecutive_failures", "Failed runs of the TimescaleDB job since its last success.", l, nil),
		runsTotal:     prometheus.NewDesc("timeseries_job_runs_total", "Runs of the TimescaleDB job by the scheduler.", l, nil),
		failuresTotal: prometheus.NewDesc("timeseries_job_failures_total", "Failed runs of the TimescaleDB job.", l, nil),
		overdue:       prometheus.NewDesc("timeseries_job_overdue", "1 when the TimescaleDB job is paused, missing, not started an hour after its next start, or last succeeded longer ago than its schedule interval plus an hour.", l, nil),
		scheduled:     prometheus.NewDesc("timeseries_job_scheduled", "1 when the TimescaleDB job is scheduled (0: paused or missing).", l, nil),
		interval:      prometheus.NewDesc("timeseries_job_schedule_interval_seconds", "The TimescaleDB job's schedule interval.", l, nil),
		policyLastRun: prometheus.NewDesc("timeseries_policy_last_run_timestamp_seconds", "When the policy's work was last done, by TimescaleDB's scheduler or by the maintainer (0: never).", p, nil),
		policyInterval: prometheus.NewDesc("timeseries_policy_interval_seconds",
			"How often the policy should run (its job's schedule interval; 1 day for a missing retention policy).", p, nil),
		checkedAt: prometheus.NewDesc("timeseries_job_health_checked_timestamp_seconds", "When the maintainer last read the TimescaleDB jobs' health.", nil, nil),
	}
	reg.MustRegister(w.runs, w.dropped, w.compressed, w)
	return w
}

// Describe implements prometheus.Collector.
func (w *jobWatcher) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{w.lastRun, w.lastSuccess, w.nextStart, w.failed, w.consecutive, w.runsTotal,
		w.failuresTotal, w.overdue, w.scheduled, w.interval, w.policyLastRun, w.policyInterval, w.checkedAt} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the snapshot of the last check.
func (w *jobWatcher) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	jobs, checked := w.jobs, w.checked
	w.mu.Unlock()
	if checked.IsZero() || len(jobs) == 0 {
		return // not checked yet, or native partitions: no jobs
	}
	ch <- prometheus.MustNewConstMetric(w.checkedAt, prometheus.GaugeValue, unix(checked))
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for _, h := range jobs {
		job := "none"
		if h.JobID != 0 {
			job = strconv.Itoa(int(h.JobID))
		}
		interval := h.ScheduleInterval
		if h.JobID == 0 {
			interval = 24 * time.Hour
		}
		gauge(w.policyLastRun, unix(h.PolicyLastRun()), h.Kind, h.Table)
		gauge(w.policyInterval, interval.Seconds(), h.Kind, h.Table)
		gauge(w.overdue, b2f(h.Overdue), job, h.Kind, h.Table)
		gauge(w.scheduled, b2f(h.Scheduled), job, h.Kind, h.Table)
		if h.JobID == 0 {
			continue
		}
		gauge(w.failed, b2f(h.Failing), job, h.Kind, h.Table)
		gauge(w.consecutive, float64(h.ConsecutiveFailures), job, h.Kind, h.Table)
		gauge(w.lastSuccess, unix(h.LastSuccess), job, h.Kind, h.Table)
		gauge(w.interval, h.ScheduleInterval.Seconds(), job, h.Kind, h.Table)
		if !h.LastRun.IsZero() {
			gauge(w.lastRun, unix(h.LastRun), job, h.Kind, h.Table)
		}
		if !h.NextStart.IsZero() {
			gauge(w.nextStart, unix(h.NextStart), job, h.Kind, h.Table)
		}
		ch <- prometheus.MustNewConstMetric(w.runsTotal, prometheus.CounterValue, float64(h.TotalRuns), job, h.Kind, h.Table)
		ch <- prometheus.MustNewConstMetric(w.failuresTotal, prometheus.CounterValue, float64(h.TotalFailures), job, h.Kind, h.Table)
	}
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// JobHealth reads monitoring.job_health() from the database the jobs run in
// (nothing on native partitions).
func (m *Maintainer) JobHealth(ctx context.Context) ([]JobHealth, error) {
	return m.jobs.health(ctx)
}

// UseStore tells the maintainer that the time series live in db, a separate
// time-series store (TIMESCALE_URL): RunOnce maintains its partitions too
// (native partitions there are created ahead and dropped by retention like
// the main database's), and reads and runs its TimescaleDB jobs instead of
// those of the main database.
func (m *Maintainer) UseStore(db *pgxpool.Pool) {
	m.store = db
	m.jobs.mu.Lock()
	m.jobs.db = db
	m.jobs.mu.Unlock()
}

func (w *jobWatcher) pool() *pgxpool.Pool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.db
}

// The jobs' health query, hand-written (sql/raw/job_health.sql says why).
//
//go:embed sql/raw/job_health.sql
var rawSQL embed.FS

func (w *jobWatcher) health(ctx context.Context) ([]JobHealth, error) {
	var q string
	if err := sqlfile.Load(rawSQL, "sql/raw/job_health.sql", map[string]*string{"JobHealth": &q}); err != nil {
		return nil, fmt.Errorf("timeseries: %w", err)
	}
	rows, err := w.pool().Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("timeseries: read TimescaleDB job health: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobHealth, error) {
		var h JobHealth
		var interval float64
		var lastRun, lastSuccess, nextStart, maint *time.Time
		err := r.Scan(&h.JobID, &h.Kind, &h.Table, &interval, &h.Scheduled, &lastRun, &lastSuccess, &h.LastRunStatus,
			&h.TotalRuns, &h.TotalFailures, &h.ConsecutiveFailures, &nextStart, &h.Failing, &h.Overdue, &maint)
		h.ScheduleInterval = time.Duration(interval * float64(time.Second))
		for _, p := range []struct {
			dst *time.Time
			src *time.Time
		}{{&h.LastRun, lastRun}, {&h.LastSuccess, lastSuccess}, {&h.NextStart, nextStart}, {&h.MaintainerLastRun, maint}} {
			if p.src != nil {
				*p.dst = *p.src
			}
		}
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("timeseries: read TimescaleDB job health: %w", err)
	}
	return jobs, nil
}

// run reads the jobs' health, does the work of the retention and then the
// compression policies whose jobs are not running (bounded per call by the
// database functions), refreshes the metrics' snapshot and logs one
// warning when the scheduler is not running a policy.
func (w *jobWatcher) run(ctx context.Context) ([]PolicyRun, error) {
	jobs, err := w.health(ctx)
	if err != nil {
		return nil, err
	}
	var runs []PolicyRun
	var errs []error
	var stale []string
	for _, kind := range []string{JobRetention, JobCompression} {
		apply := (*timeseriesdb.Queries).ApplyRetention
		if kind == JobCompression {
			apply = (*timeseriesdb.Queries).ApplyCompression
		}
		for _, h := range jobs {
			if h.Kind != kind || !h.NotRunning() || slices.ContainsFunc(runs, func(r PolicyRun) bool { return r.Kind == kind && r.Table == h.Table }) {
				continue
			}
			chunks, err := apply(timeseriesdb.New(w.pool()), ctx, h.Table)
			if err != nil {
				errs = append(errs, fmt.Errorf("timeseries: %s policy of %s in place of the scheduler: %w", kind, h.Table, err))
				continue
			}
			runs = append(runs, PolicyRun{Kind: kind, Table: h.Table, Job: h, Chunks: chunks})
			w.runs.WithLabelValues(kind).Inc()
			if kind == JobRetention {
				w.dropped.WithLabelValues(h.Table).Add(float64(len(chunks)))
			} else {
				w.compressed.WithLabelValues(h.Table).Add(float64(len(chunks)))
			}
		}
	}
	for _, h := range jobs {
		if h.Kind == JobRefresh && h.NotRunning() {
			stale = append(stale, fmt.Sprintf("%s (job %d: %s)", h.Table, h.JobID, h.why()))
		}
	}
	if len(runs) > 0 {
		// The snapshot shows the maintainer's runs.
		if again, err := w.health(ctx); err == nil {
			jobs = again
		} else {
			errs = append(errs, err)
		}
	}
	w.mu.Lock()
	w.jobs, w.checked = jobs, time.Now()
	w.mu.Unlock()
	w.log(ctx, runs, stale)
	return runs, errors.Join(errs...)
}

func (w *jobWatcher) log(ctx context.Context, runs []PolicyRun, stale []string) {
	if len(runs) == 0 && len(stale) == 0 {
		return
	}
	var kinds, policies []string
	dropped, compressed := 0, 0
	for _, r := range runs {
		if !slices.Contains(kinds, r.Kind) {
			kinds = append(kinds, r.Kind)
		}
		job := "no job"
		if r.Job.JobID != 0 {
			job = "job " + strconv.Itoa(int(r.Job.JobID))
		}
		policies = append(policies, fmt.Sprintf("%s %s (%s: %s): %d chunks", r.Kind, r.Table, job, r.Job.why(), len(r.Chunks)))
		if r.Kind == JobRetention {
			dropped += len(r.Chunks)
		} else {
			compressed += len(r.Chunks)
		}
	}
	attrs := []any{"policies", policies, "chunks_dropped", dropped, "chunks_compressed", compressed}
	if len(stale) > 0 {
		attrs = append(attrs, "refresh_not_running", stale,
			"refresh_note", "the continuous aggregate reads in real time, so answers stay complete; only slower")
	}
	msg := "TimescaleDB scheduler is not running policy " + strings.Join(kinds, ", ") + "; the maintainer ran it"
	if len(runs) == 0 {
		msg = "TimescaleDB scheduler is not refreshing the continuous aggregate; reads stay complete (real time), only slower"
	}
	w.logger.WarnContext(ctx, msg, attrs...)
}
