// Package dataset generates a realistic organisation and its monitoring
// data (issue 15): a department tree with a lead per department, employees
// with Windows SIDs (some with a second computer), card and employee
// numbers, a report policy, demo users, and per employee and day badge-ins
// at the door terminals, login/lock/unlock/logout sessions (some crossing
// midnight), active windows about every 4–30 s, visited sites and
// screenshot metadata every ~5 minutes — about 1,650 rows per employee and
// calendar day (weekends mostly off, ~3 % absences, ~7 % late arrivals), so
// 1,000 employees × 30 days are about 50 million rows.
//
// It is deterministic for a seed: the randomness is a hash (splitmix64) of
// the seed and the coordinates of each draw (employee, day, series), so the
// series' rows do not depend on the order or the worker that draws them.
//
// Speed: the relational part (organisation, departments, employees, users,
// policy, gateway) goes through the services that own it (accounts,
// directory, policy: validation, audit rows); the series are COPYed by
// pgx.CopyFrom straight into the parents of monitoring.* on the
// administrator's connection, one COPY per series and day, several at
// once, each streamed employee by employee from a pgx.CopyFromSource (never
// the whole set in memory). Native daily partitions are created first
// (monitoring.ensure_partitions); under TimescaleDB the hypertables make
// their own chunks.
package dataset

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dataset/datasetdb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
)

// Limits of a Config.
const (
	MaxEmployees = 100_000
	MaxDays      = 366
)

// Config is what to generate.
type Config struct {
	// Employees is how many employees (default 1,000).
	Employees int
	// Days is how many days, ending with EndDate (default 30).
	Days int
	// EndDate is the last day, "YYYY-MM-DD" in TimeZone (default: today
	// there).
	EndDate string
	// Seed decides every draw: the same seed gives the same rows.
	Seed uint64
	// OrgSlug is the new organisation's slug (required; it must not exist).
	OrgSlug string
	// OrgName is its name (default: derived from the slug).
	OrgName string
	// TimeZone is the organisation's IANA time zone, which cuts its days
	// (default Europe/Berlin).
	TimeZone string
	// Writers is how many COPYs run at once (default GOMAXPROCS).
	Writers int
	// Password, when set, is every demo user's password; otherwise each
	// gets a random one, returned once in Result.Users.
	Password string
	// ProgressEvery is how often Progress is called (default 5 s).
	ProgressEvery time.Duration
	// Progress, when set, is called every ProgressEvery while the series
	// are written.
	Progress func(Progress)
}

// Deps are the generator's connections and collaborators.
type Deps struct {
	// Owner is the administrator's pool (the schema owner or a superuser,
	// no tenant context): the COPYs into monitoring.* and the partitions.
	// Its size bounds the writers.
	Owner *pgxpool.Pool
	// Platform is a staff_admin pool signing tenant contexts with the
	// database's key: the organisation, directory, users and policy are
	// written through their services as the platform ADMIN.
	Platform *pgxpool.Pool
	// Files, when set, receives a tiny image for every screenshot row
	// (demos; not for the big run).
	Files storage.Store
	// Now is the clock (time.Now when nil): today, when EndDate is empty.
	Now func() time.Time
	// Logger logs the phases (slog.Default when nil).
	Logger *slog.Logger
}

// Progress is how far the series are.
type Progress struct {
	Rows    int64
	Elapsed time.Duration
}

// RowsPerSecond is the mean rate so far.
func (p Progress) RowsPerSecond() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Rows) / p.Elapsed.Seconds()
}

// Login is a demo user the generator created.
type Login struct {
	Email    string
	Role     string
	Password string // shown once
	Note     string // e.g. the department led
}

// Result is what Generate wrote.
type Result struct {
	OrganizationID int64
	Slug           string
	TimeZone       string
	GatewayID      uuid.UUID
	PolicyID       int64
	// Storage is "partitions" or "timescaledb".
	Storage string
	// From and To are the first and last day (organisation's time zone).
	From, To    string
	Departments int
	Employees   int
	Users       []Login
	// Rows per table of schema monitoring.
	Rows map[string]int64
	// DirtyHours is how many (SID, UTC hour) keys the series touch.
	DirtyHours int
	// Setup is the time of the relational part, Series of the COPYs.
	Setup, Series time.Duration
}

// Total is the number of series rows.
func (r Result) Total() int64 {
	var n int64
	for _, v := range r.Rows {
		n += v
	}
	return n
}

// RowsPerSecond is the series' rate.
func (r Result) RowsPerSecond() float64 {
	if r.Series <= 0 {
		return 0
	}
	return float64(r.Total()) / r.Series.Seconds()
}

// generator holds one run's organisation and days.
type generator struct {
	seed    uint64
	org     int64
	gateway uuid.UUID
	loc     *time.Location
	days    []time.Time // local midnights
	emps    []employee
	files   storage.Store

	image    []byte // the tiny screenshot image (files only)
	imageSum string

	pageURLs, pageTitles [][]string // by site, page
}

// normalize fills defaults and checks cfg, naming the field at fault.
func (cfg *Config) normalize(now time.Time) (*time.Location, time.Time, error) {
	if cfg.Employees == 0 {
		cfg.Employees = 1000
	}
	if cfg.Days == 0 {
		cfg.Days = 30
	}
	if cfg.TimeZone == "" {
		cfg.TimeZone = "Europe/Berlin"
	}
	if cfg.Writers <= 0 {
		cfg.Writers = runtime.GOMAXPROCS(0)
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 5 * time.Second
	}
	switch {
	case cfg.Employees < 1 || cfg.Employees > MaxEmployees:
		return nil, time.Time{}, apperr.Field("employees", "must be between 1 and %d", MaxEmployees)
	case cfg.Days < 1 || cfg.Days > MaxDays:
		return nil, time.Time{}, apperr.Field("days", "must be between 1 and %d", MaxDays)
	case cfg.OrgSlug == "":
		return nil, time.Time{}, apperr.Field("org_slug", "is required")
	case cfg.Password != "" && len(cfg.Password) < 12:
		return nil, time.Time{}, apperr.Field("password", "must be at least 12 characters")
	}
	loc, err := time.LoadLocation(cfg.TimeZone)
	if err != nil || cfg.TimeZone == "Local" {
		return nil, time.Time{}, apperr.Field("time_zone", "%q is not an IANA time zone", cfg.TimeZone)
	}
	end := now.In(loc)
	if cfg.EndDate != "" {
		if end, err = time.ParseInLocation(time.DateOnly, cfg.EndDate, loc); err != nil {
			return nil, time.Time{}, apperr.Field("end_date", "must be a date, YYYY-MM-DD")
		}
	}
	if cfg.OrgName == "" {
		cfg.OrgName = "Generated " + cfg.OrgSlug
	}
	return loc, time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, loc), nil
}

// Generate creates the organisation cfg describes and writes its series.
func Generate(ctx context.Context, deps Deps, cfg Config) (Result, error) {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	loc, end, err := cfg.normalize(deps.Now())
	if err != nil {
		return Result{}, err
	}
	g := &generator{seed: cfg.Seed, loc: loc, files: deps.Files}
	for i := cfg.Days - 1; i >= 0; i-- {
		g.days = append(g.days, time.Date(end.Year(), end.Month(), end.Day()-i, 0, 0, 0, 0, loc))
	}
	g.catalogue()
	res := Result{Slug: cfg.OrgSlug, TimeZone: cfg.TimeZone, From: g.days[0].Format(time.DateOnly), To: end.Format(time.DateOnly),
		Rows: map[string]int64{}}

	start := time.Now()
	if err := g.setup(ctx, deps, cfg, &res); err != nil {
		return res, err
	}
	res.Setup = time.Since(start)
	deps.Logger.InfoContext(ctx, "dataset: organisation ready", "organization_id", res.OrganizationID, "employees", res.Employees,
		"setup", res.Setup.Round(time.Millisecond))

	q := datasetdb.New(deps.Owner)
	if res.Storage, err = q.StorageKind(ctx); err != nil {
		return res, fmt.Errorf("dataset: storage kind: %w", err)
	}
	// Local days map to UTC days from the first one's to the day after the
	// last (sessions cross midnight, time zones east of UTC).
	from := g.days[0].UTC()
	to := g.days[len(g.days)-1].AddDate(0, 0, 2).UTC()
	if _, err := q.EnsurePartitions(ctx, datasetdb.EnsurePartitionsParams{FromDay: from, ToDay: to}); err != nil {
		return res, fmt.Errorf("dataset: partitions %s..%s: %w", from.Format(time.DateOnly), to.Format(time.DateOnly), err)
	}

	var rows atomic.Int64
	start = time.Now()
	pctx, stopProgress := context.WithCancel(ctx)
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if cfg.Progress == nil {
			return
		}
		_ = lifecycle.Every(pctx, cfg.ProgressEvery, false, func(context.Context) {
			cfg.Progress(Progress{Rows: rows.Load(), Elapsed: time.Since(start)})
		})
	}()
	cr, err := runJobs(ctx, deps.Owner, cfg.Writers, g.jobs(), func(j job) pgx.CopyFromSource { return newSource(ctx, g, j, &rows) })
	stopProgress()
	<-progressDone
	res.Series = time.Since(start)
	for i, n := range cr.rows {
		res.Rows[tableNames[i]] = n
	}
	res.DirtyHours = len(cr.keys)
	if err != nil {
		return res, fmt.Errorf("dataset: %w", err)
	}
	// The report rollups of everything written are stale: one COPY of the
	// (SID, hour) keys, which the rollup maintainer then works off.
	if _, err := deps.Owner.CopyFrom(ctx, pgx.Identifier{"monitoring", "activity_dirty"}, []string{"organization_id", "user_sid", "hour"},
		dirtyRows(g.org, cr.keys)); err != nil {
		return res, fmt.Errorf("dataset: activity_dirty: %w", err)
	}
	deps.Logger.InfoContext(ctx, "dataset: series written", "rows", res.Total(), "seconds", res.Series.Seconds(),
		"rows_per_second", int64(res.RowsPerSecond()))
	return res, nil
}

// catalogue prepares the sites' URLs and titles, and the screenshot image.
func (g *generator) catalogue() {
	for _, s := range sites {
		var urls, titles []string
		for _, p := range s.pages {
			urls = append(urls, "https://"+s.host+p[0])
			titles = append(titles, p[1]+" - Google Chrome")
		}
		g.pageURLs = append(g.pageURLs, urls)
		g.pageTitles = append(g.pageTitles, titles)
	}
	if g.files != nil {
		g.image = tinyPNG()
		sum := sha256.Sum256(g.image)
		g.imageSum = hex.EncodeToString(sum[:])
	}
}

// tinyPNG is a valid 1×1 grey PNG.
func tinyPNG() []byte {
	b, _ := hex.DecodeString("89504e470d0a1a0a0000000d4948445200000001000000010800000000" +
		"3a7e9b550000000a49444154789c636800000082008177cd72b60000000049454e44ae426082")
	return b
}

// dirtyRows is the activity_dirty rows of keys, in key order (the primary
// key's).
func dirtyRows(org int64, keys map[hourKey]struct{}) pgx.CopyFromSource {
	sorted := slices.SortedFunc(maps.Keys(keys), func(a, b hourKey) int {
		if c := strings.Compare(a.sid, b.sid); c != 0 {
			return c
		}
		return cmp.Compare(a.hour, b.hour)
	})
	return pgx.CopyFromSlice(len(sorted), func(i int) ([]any, error) {
		return []any{org, sorted[i].sid, time.Unix(sorted[i].hour, 0).UTC()}, nil
	})
}
