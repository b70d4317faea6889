package report

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/report/reportdb"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
)

// MaintainerConfig tunes a Maintainer.
type MaintainerConfig struct {
	// Interval between runs (DefaultRollupInterval when zero).
	Interval time.Duration
	// SidsPerClaim is how many (organisation, sid) pairs one transaction
	// claims and recomputes (DefaultSidsPerClaim when zero).
	SidsPerClaim int
	// MaxClaims bounds the transactions of one run (DefaultMaxClaims when
	// zero); the rest waits for the next run.
	MaxClaims int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger (discarding when nil).
	Logger *slog.Logger
	// Metrics receives the runs' figures and the backlog after each run
	// (none when nil); Store labels them ("main", "timeseries").
	Metrics *MaintainerMetrics
	Store   string
}

// MaintainerMetrics are the rollup maintainers' metrics, shared by the
// maintainers of one process (one per database) and labelled by store.
type MaintainerMetrics struct {
	runs                     *prometheus.CounterVec
	days                     *prometheus.CounterVec
	backlogHours, backlogSid *prometheus.GaugeVec
	oldest, lastSuccess      *prometheus.GaugeVec
}

// NewMaintainerMetrics registers the maintainers' metrics on reg.
func NewMaintainerMetrics(reg prometheus.Registerer) *MaintainerMetrics {
	store := []string{"store"}
	m := &MaintainerMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "report_rollup_runs_total",
			Help: "Rollup maintenance runs, by store and result (ok, error)."}, []string{"store", "result"}),
		days: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "report_rollup_days_total",
			Help: "Local (sid, day) rollups recomputed from the raw rows."}, store),
		backlogHours: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "report_rollup_backlog_hours",
			Help: "Dirty (sid, UTC hour) keys before the current hour still waiting for the maintainer, after its last run."}, store),
		backlogSid: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "report_rollup_backlog_sids",
			Help: "(organisation, sid) pairs with dirty hours waiting, after the last run."}, store),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "report_rollup_backlog_oldest_seconds",
			Help: "Age of the oldest waiting dirty hour's end, after the last run (0: none waiting)."}, store),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "report_rollup_last_success_timestamp_seconds",
			Help: "When the last maintenance run completed without error (Unix time)."}, store),
	}
	reg.MustRegister(m.runs, m.days, m.backlogHours, m.backlogSid, m.oldest, m.lastSuccess)
	return m
}

// Backlog is what waits for the maintainer.
type Backlog struct {
	// Hours and Sids count the dirty (sid, hour) keys before the current
	// hour and their (organisation, sid) pairs; Oldest is the oldest hour
	// (zero when none).
	Hours, Sids int64
	Oldest      time.Time
}

// Defaults of MaintainerConfig.
const (
	DefaultRollupInterval = time.Minute
	DefaultSidsPerClaim   = 20
	DefaultMaxClaims      = 1000
)

// maxSourceSpan is the longest range one activity_source call reads.
const maxSourceSpan = 30 * 24 * time.Hour

// Maintainer keeps the activity rollups current: it claims the dirty hours
// of a few (organisation, sid) pairs at a time (monitoring.activity_claim:
// concurrent maintainers skip each other's pairs), recomputes every local
// day those hours touch from the raw rows and replaces the days' rollups,
// in one transaction per claim. The hour being written (the current one)
// is left to a later run. A lifecycle.Service: Start runs RunOnce every
// Interval, the first one Interval after the start (not during the
// Agent API's start-up).
type Maintainer struct {
	pool, main *pgxpool.Pool
	cfg        MaintainerConfig
	sql        rawSQL
	loop       *lifecycle.Loop
}

// Result counts one run's work.
type Result struct {
	// Claims is the number of claim transactions that found work.
	Claims int `json:"claims"`
	// Sids, Hours and Days: the pairs claimed, their dirty hours and the
	// local days recomputed.
	Sids  int `json:"sids"`
	Hours int `json:"hours"`
	Days  int `json:"days"`
}

// NewMaintainer returns a Maintainer of the rollups of the database pool
// connects to, as the ingest role. main, when the time series live in a
// separate database, is the main one's (as the ingest role), which knows
// the organisations' time zones (nil or pool otherwise).
func NewMaintainer(pool, main *pgxpool.Pool, cfg MaintainerConfig) *Maintainer {
	if main == pool {
		main = nil
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultRollupInterval
	}
	if cfg.SidsPerClaim <= 0 {
		cfg.SidsPerClaim = DefaultSidsPerClaim
	}
	if cfg.MaxClaims <= 0 {
		cfg.MaxClaims = DefaultMaxClaims
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := loadRaw()
	if err != nil {
		panic(err) // embedded and tested: a bug
	}
	m := &Maintainer{pool: pool, main: main, cfg: cfg, sql: r}
	m.loop = lifecycle.NewLoop("rollup maintainer", cfg.Logger, func(ctx context.Context) error {
		return lifecycle.Every(ctx, cfg.Interval, false, func(ctx context.Context) {
			res, err := m.RunOnce(ctx)
			m.record(ctx, res, err)
			switch {
			case err != nil && ctx.Err() == nil:
				cfg.Logger.ErrorContext(ctx, "rollup maintenance failed", "err", err)
			case res.Sids > 0:
				cfg.Logger.InfoContext(ctx, "rollups maintained", "sids", res.Sids, "hours", res.Hours, "days", res.Days)
			}
		})
	})
	return m
}

// Start starts the periodic runs.
func (m *Maintainer) Start(ctx context.Context) error { return m.loop.Start(ctx) }

// Stop ends them.
func (m *Maintainer) Stop(ctx context.Context) error { return m.loop.Stop(ctx) }

// RunOnce claims and recomputes until nothing claimable is left (or
// MaxClaims transactions).
func (m *Maintainer) RunOnce(ctx context.Context) (Result, error) {
	var res Result
	zones := map[int64]*time.Location{}
	before := m.cfg.Now().Truncate(time.Hour)
	for range m.cfg.MaxClaims {
		n, err := m.claimOnce(ctx, before, zones, &res)
		if err != nil {
			return res, err
		}
		if n == 0 {
			break
		}
		res.Claims++
	}
	return res, nil
}

// Backlog reads what waits for a maintainer now, over every organisation.
func (m *Maintainer) Backlog(ctx context.Context) (Backlog, error) {
	var b Backlog
	var oldest pgtype.Timestamptz
	if err := m.pool.QueryRow(ctx, m.sql.Backlog, m.cfg.Now().Truncate(time.Hour)).Scan(&b.Hours, &b.Sids, &oldest); err != nil {
		return b, fmt.Errorf("report: maintainer: read the backlog: %w", err)
	}
	if oldest.Valid {
		b.Oldest = oldest.Time
	}
	return b, nil
}

// record exports a run's figures and the backlog after it.
func (m *Maintainer) record(ctx context.Context, res Result, err error) {
	mm := m.cfg.Metrics
	if mm == nil || ctx.Err() != nil {
		return
	}
	store := m.cfg.Store
	mm.days.WithLabelValues(store).Add(float64(res.Days))
	if err != nil {
		mm.runs.WithLabelValues(store, "error").Inc()
		return
	}
	mm.runs.WithLabelValues(store, "ok").Inc()
	now := m.cfg.Now()
	mm.lastSuccess.WithLabelValues(store).Set(float64(now.UnixNano()) / 1e9)
	b, err := m.Backlog(ctx)
	if err != nil {
		m.cfg.Logger.WarnContext(ctx, "rollup backlog not read", "err", err)
		return
	}
	mm.backlogHours.WithLabelValues(store).Set(float64(b.Hours))
	mm.backlogSid.WithLabelValues(store).Set(float64(b.Sids))
	age := 0.0
	if !b.Oldest.IsZero() {
		age = max(0, now.Sub(b.Oldest.Add(time.Hour)).Seconds())
	}
	mm.oldest.WithLabelValues(store).Set(age)
}

type sidKey struct {
	org int64
	sid string
}

// claimOnce runs one claim transaction; it returns the pairs claimed.
func (m *Maintainer) claimOnce(ctx context.Context, before time.Time, zones map[int64]*time.Location, res *Result) (int, error) {
	tx, err := m.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("report: maintainer: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, m.sql.Claim, m.cfg.SidsPerClaim, before)
	if err != nil {
		return 0, fmt.Errorf("report: maintainer: claim: %w", err)
	}
	hours := map[sidKey][]time.Time{}
	var order []sidKey
	var org int64
	var sid string
	var hour time.Time
	_, err = pgx.ForEachRow(rows, []any{&org, &sid, &hour}, func() error {
		k := sidKey{org, sid}
		if _, seen := hours[k]; !seen {
			order = append(order, k)
		}
		hours[k] = append(hours[k], hour)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("report: maintainer: claim: %w", err)
	}
	if len(order) == 0 {
		return 0, nil
	}
	q := reportdb.New(tx)
	for _, k := range order {
		loc, err := m.zone(ctx, q, k.org, zones)
		if err != nil {
			return 0, err
		}
		days := touchedDays(hours[k], loc)
		if err := m.recompute(ctx, tx, q, k, loc, days); err != nil {
			return 0, err
		}
		res.Sids++
		res.Hours += len(hours[k])
		res.Days += len(days)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("report: maintainer: commit: %w", err)
	}
	return len(order), nil
}

// zone is the organisation's location (from the main database when
// separate), cached for the run.
func (m *Maintainer) zone(ctx context.Context, q *reportdb.Queries, org int64, zones map[int64]*time.Location) (*time.Location, error) {
	if loc := zones[org]; loc != nil {
		return loc, nil
	}
	if m.main != nil {
		q = reportdb.New(m.main)
	}
	name, err := q.TimeZone(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("report: maintainer: time zone of %d: %w", org, err)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		// Rolled up in UTC: rows the engine ignores (another zone), so the
		// organisation's reports read raw; the other organisations go on.
		m.cfg.Logger.WarnContext(ctx, "rollups: unknown time zone, rolling up in UTC", "organization_id", org, "time_zone", name, "err", err)
		loc = time.UTC
	}
	zones[org] = loc
	return loc, nil
}

// touchedDays lists, in order, the local days the UTC hours overlap.
func touchedDays(hours []time.Time, loc *time.Location) []dayOf {
	seen := map[string]bool{}
	var out []dayOf
	for _, h := range hours {
		for _, at := range []time.Time{h, h.Add(time.Hour - time.Nanosecond)} {
			d := localDay(at.In(loc), loc)
			if !seen[d.Date] {
				seen[d.Date] = true
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, func(a, b dayOf) int { return a.Start.Compare(b.Start) })
	return out
}

// recompute replaces the rollups of days (sorted) of one pair from its raw
// rows, one source read per span of at most 30 days.
func (m *Maintainer) recompute(ctx context.Context, tx pgx.Tx, q *reportdb.Queries, k sidKey, loc *time.Location, days []dayOf) error {
	for i := 0; i < len(days); {
		j := i
		for j+1 < len(days) && days[j+1].End.Sub(days[i].Start) <= maxSourceSpan {
			j++
		}
		rows, err := m.source(ctx, tx, k, days[i].Start, days[j].End)
		if err != nil {
			return err
		}
		for _, d := range days[i : j+1] {
			if err := store(ctx, q, k, loc, d, computeSidDay(d, rows)); err != nil {
				return err
			}
		}
		i = j + 1
	}
	return nil
}

func (m *Maintainer) source(ctx context.Context, tx pgx.Tx, k sidKey, from, to time.Time) ([]interval, error) {
	rows, err := tx.Query(ctx, m.sql.Source, k.org, k.sid, from, to)
	if err != nil {
		return nil, fmt.Errorf("report: maintainer: read rows: %w", err)
	}
	var out []interval
	var kind string
	var process, url *string
	var at time.Time
	var dur *int32
	_, err = pgx.ForEachRow(rows, []any{&kind, &process, &url, &at, &dur}, func() error {
		iv := interval{Kind: kind, Host: hostOf(deref(url)), At: at, Seconds: seconds(dur)}
		if kind == "window" {
			iv.Process = deref(process)
		}
		out = append(out, iv)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("report: maintainer: read rows: %w", err)
	}
	return out, nil
}

// store writes one day's rollup.
func store(ctx context.Context, q *reportdb.Queries, k sidKey, loc *time.Location, d dayOf, sd sidDay) error {
	p := reportdb.StoreParams{OrganizationID: k.org, UserSid: k.sid, TimeZone: loc.String(), ActiveMinutes: sd.Mask,
		Kinds: []string{}, ProcessNames: []string{}, Hosts: []string{}, Seconds: []int64{}, Events: []int64{}}
	day, err := time.Parse(time.DateOnly, d.Date)
	if err != nil {
		return err
	}
	p.Day = day
	if first, last := firstLast(sd.Mask, d.minutes()); first >= 0 {
		f := d.Start.Add(time.Duration(first) * time.Minute)
		l := d.Start.Add(time.Duration(last+1) * time.Minute)
		if l.After(d.End) {
			l = d.End
		}
		p.FirstAt, p.LastAt = pgtype.Timestamptz{Time: f, Valid: true}, pgtype.Timestamptz{Time: l, Valid: true}
	}
	keys := make([]usageKey, 0, len(sd.Usage))
	for uk := range sd.Usage {
		keys = append(keys, uk)
	}
	slices.SortFunc(keys, func(a, b usageKey) int {
		if a.Kind != b.Kind {
			return cmp.Compare(a.Kind, b.Kind)
		}
		if a.Process != b.Process {
			return cmp.Compare(a.Process, b.Process)
		}
		return cmp.Compare(a.Host, b.Host)
	})
	for _, uk := range keys {
		v := sd.Usage[uk]
		p.Kinds = append(p.Kinds, uk.Kind)
		p.ProcessNames = append(p.ProcessNames, uk.Process)
		p.Hosts = append(p.Hosts, uk.Host)
		p.Seconds = append(p.Seconds, v.Seconds)
		p.Events = append(p.Events, v.Events)
	}
	if err := q.Store(ctx, p); err != nil {
		return fmt.Errorf("report: maintainer: store %s/%s %s: %w", fmt.Sprint(k.org), k.sid, d.Date, err)
	}
	return nil
}
