package timeseries

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries/timeseriesdb"
)

// Schemas a time series may be written to.
const (
	// SchemaStore is the time-series store's schema.
	SchemaStore = "monitoring"
	// SchemaFallback is the fallback partitions' schema in the main database.
	SchemaFallback = "monitoring_fallback"
)

// MaxDaysPerEnsure bounds the days one EnsureDays call may name (the SQL
// function refuses more).
const MaxDaysPerEnsure = 62

// Days ensures the daily partitions that batches need: only the days named
// and only the tables written, through monitoring.ensure_day_partitions (a
// no-op for the store's schema under TimescaleDB). It remembers which
// partitions exist for a bounded time only, because retention drops days
// behind its back; Forget drops the memory at once when an insert finds a
// partition missing.
type Days struct {
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	known map[partKey]time.Time // until when the partition is taken to exist
}

type partKey struct {
	db     *pgxpool.Pool
	schema string
	table  string
	day    string
}

// NewDays returns a Days that trusts a partition it ensured for ttl
// (default 10 minutes when ttl <= 0); now is the clock (time.Now when nil).
func NewDays(ttl time.Duration, now func() time.Time) *Days {
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	if now == nil {
		now = time.Now
	}
	return &Days{ttl: ttl, now: now, known: map[partKey]time.Time{}}
}

// DayOf is the UTC day of t.
func DayOf(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// EnsureDays makes sure that db has, in schema, a daily partition of every
// table for every day (UTC midnights) that it does not remember, and returns
// how many partitions it created. Days past a table's retention are never
// created (the caller refuses their events).
func (d *Days) EnsureDays(ctx context.Context, db *pgxpool.Pool, schema string, tables []string, days []time.Time) (int, error) {
	now := d.now()
	d.mu.Lock()
	needT, needD := map[string]bool{}, map[string]bool{}
	for _, t := range tables {
		for _, day := range days {
			k := partKey{db, schema, t, day.Format(time.DateOnly)}
			if until, ok := d.known[k]; ok && now.Before(until) {
				continue
			}
			needT[t], needD[k.day] = true, true
		}
	}
	d.mu.Unlock()
	if len(needT) == 0 {
		return 0, nil
	}
	ts := make([]string, 0, len(needT))
	for t := range needT {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	ds := make([]string, 0, len(needD))
	for k := range needD {
		ds = append(ds, k)
	}
	sort.Strings(ds)
	if len(ds) > MaxDaysPerEnsure {
		return 0, fmt.Errorf("timeseries: %d days to ensure at once, at most %d", len(ds), MaxDaysPerEnsure)
	}
	n, err := timeseriesdb.New(db).EnsureDayPartitions(ctx, timeseriesdb.EnsureDayPartitionsParams{SchemaName: schema, Tables: ts, Days: ds})
	created := int(n)
	if err != nil {
		return 0, fmt.Errorf("timeseries: ensure %d day(s) of %v in %s: %w", len(ds), ts, schema, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	until := now.Add(d.ttl)
	for _, t := range ts {
		for _, day := range ds {
			d.known[partKey{db, schema, t, day}] = until
		}
	}
	// Forget what has lapsed, so that the map stays small.
	for k, u := range d.known {
		if !now.Before(u) {
			delete(d.known, k)
		}
	}
	return created, nil
}

// Forget drops what d remembers about the partitions of schema in db for the
// given tables and days: the next EnsureDays asks the database again.
func (d *Days) Forget(db *pgxpool.Pool, schema string, tables []string, days []time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range tables {
		for _, day := range days {
			delete(d.known, partKey{db, schema, t, day.Format(time.DateOnly)})
		}
	}
}

// Retention reads the retention of every table (monitoring.retention, in
// days) and keeps it for a bounded time.
type Retention struct {
	db  *pgxpool.Pool
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	days    map[string]int
	fetched time.Time
}

// NewRetention returns a Retention reading db (the ingest role may SELECT
// monitoring.retention) at most once per ttl (default 1 minute when <= 0).
func NewRetention(db *pgxpool.Pool, ttl time.Duration, now func() time.Time) *Retention {
	if ttl <= 0 {
		ttl = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	return &Retention{db: db, ttl: ttl, now: now}
}

// Days returns the retention of every table, in days.
func (r *Retention) Days(ctx context.Context) (map[string]int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.days != nil && r.now().Sub(r.fetched) < r.ttl {
		return r.days, nil
	}
	rows, err := timeseriesdb.New(r.db).Retention(ctx)
	if err != nil {
		return nil, fmt.Errorf("timeseries: read retention: %w", err)
	}
	days := map[string]int{}
	for _, row := range rows {
		days[row.TableName] = int(row.Days)
	}
	r.days, r.fetched = days, r.now()
	return days, nil
}
