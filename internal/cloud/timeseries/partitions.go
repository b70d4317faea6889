// Package timeseries maintains the storage of the monitoring time series.
// Without TimescaleDB, the series are native daily partitions that must
// exist before an event for that day arrives and be dropped once older than
// the table's retention; Maintainer does both, through SECURITY DEFINER
// functions owned by the schema owner so that the ingest role never owns or
// addresses a partition. Under TimescaleDB the same calls are no-ops (chunks
// and retention policies are the extension's work), and Maintainer watches
// the extension's jobs instead: it exports their health as metrics and does
// the work of the retention and compression policies whose jobs are failing
// or overdue itself (jobs.go).
package timeseries

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries/timeseriesdb"
)

// Maintainer creates daily partitions ahead of time and drops expired ones.
type Maintainer struct {
	db      *pgxpool.Pool
	logger  *slog.Logger
	behind  int // days before today to cover (late events from buffering gateways)
	ahead   int // days after today to cover
	created prometheus.Counter
	dropped prometheus.Counter
	errors  prometheus.Counter
	jobs    *jobWatcher
	// store is a separate time-series database (TIMESCALE_URL), whose
	// partitions RunOnce maintains too; nil when the series live in db.
	store *pgxpool.Pool
	// keepExpired: db's expired partitions are retention's to drop
	// (LeaveDropsToRetention).
	keepExpired bool
}

// LeaveDropsToRetention stops the Maintainer dropping the main database's
// expired partitions: the retention runs (package retention) drop them,
// counting their rows, after the per-organisation deletes that may have
// to archive rows first. A separate store's partitions (UseStore) are
// still dropped here. Call it before the first run.
func (m *Maintainer) LeaveDropsToRetention() { m.keepExpired = true }

// NewMaintainer returns a Maintainer using db (the ingest role). It covers
// behind days before today (the gateway buffers 7 days) and ahead days
// after (the database clamps them to at most 62 and 3), and registers its
// metrics with reg.
func NewMaintainer(db *pgxpool.Pool, logger *slog.Logger, reg prometheus.Registerer, behind, ahead int) *Maintainer {
	m := &Maintainer{
		db: db, logger: logger, behind: behind, ahead: ahead,
		created: prometheus.NewCounter(prometheus.CounterOpts{Name: "timeseries_partitions_created_total", Help: "Daily time-series partitions created ahead of time."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "timeseries_partitions_dropped_total", Help: "Daily time-series partitions dropped by retention."}),
		errors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "timeseries_maintenance_errors_total", Help: "Failed partition maintenance runs."}),
	}
	reg.MustRegister(m.created, m.dropped, m.errors)
	m.jobs = newJobWatcher(db, logger, reg)
	return m
}

// Result is what one maintenance run did.
type Result struct {
	Created int
	Dropped []string
	// Policies are the TimescaleDB policies run in place of the scheduler.
	Policies []PolicyRun
}

// RunOnce runs RunPartitions and then, under TimescaleDB, the retention and
// compression policies whose jobs are failing or overdue (bounded per call
// as well), and refreshes the jobs' health metrics.
//
// With a separate store (UseStore) the store's partitions are maintained
// as well — after the main database's, so that a store that is down (the
// Agent API then writes to the fallback) delays nothing else; its failure
// is returned after the jobs have run.
func (m *Maintainer) RunOnce(ctx context.Context) (Result, error) {
	res, err := m.RunPartitions(ctx)
	if err != nil {
		return res, err
	}
	var storeErr error
	if m.store != nil {
		sr, err := m.partitionsIn(ctx, m.store, true)
		res.Created += sr.Created
		res.Dropped = append(res.Dropped, sr.Dropped...)
		if err != nil {
			storeErr = fmt.Errorf("time-series store: %w", err)
		}
	}
	if res.Policies, err = m.jobs.run(ctx); err != nil {
		m.errors.Inc()
		return res, errors.Join(err, storeErr)
	}
	return res, storeErr
}

// RunPartitions ensures the partitions around the database server's today
// exist and drops expired ones (unless LeaveDropsToRetention). The database clamps both (at most 3 days
// ahead, never before retention, a bounded number per call) and measures
// retention from its own clock: the ingest role chooses no time.
func (m *Maintainer) RunPartitions(ctx context.Context) (Result, error) {
	return m.partitionsIn(ctx, m.db, !m.keepExpired)
}

// partitionsIn does RunPartitions' work in db (without the drops unless
// drop).
func (m *Maintainer) partitionsIn(ctx context.Context, db *pgxpool.Pool, drop bool) (Result, error) {
	var res Result
	q := timeseriesdb.New(db)
	created, err := q.EnsureRecentPartitions(ctx, timeseriesdb.EnsureRecentPartitionsParams{Behind: int32(m.behind), Ahead: int32(m.ahead)})
	res.Created = int(created)
	if err != nil {
		m.errors.Inc()
		return res, fmt.Errorf("timeseries: ensure partitions (%d days behind, %d ahead): %w", m.behind, m.ahead, err)
	}
	if drop {
		res.Dropped, err = q.DropExpiredPartitions(ctx)
	}
	if err != nil {
		m.errors.Inc()
		return res, fmt.Errorf("timeseries: drop expired partitions: %w", err)
	}
	m.created.Add(float64(res.Created))
	m.dropped.Add(float64(len(res.Dropped)))
	if res.Created > 0 || len(res.Dropped) > 0 {
		m.logger.InfoContext(ctx, "partition maintenance", "created", res.Created, "dropped", len(res.Dropped))
	}
	return res, nil
}
