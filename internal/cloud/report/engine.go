package report

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/report/reportdb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/sqlfile"
)

// Options tune an Engine.
type Options struct {
	// UseRollups reads closed, clean days from the rollups.
	UseRollups bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger (discarding when nil).
	Logger *slog.Logger
	// SafetyLag: a day is closed once its end is this far in the past
	// (DefaultSafetyLag when zero).
	SafetyLag time.Duration
	// TopN is how many applications and sites a day lists (DefaultTopN when
	// zero).
	TopN int
}

// Defaults of Options.
const (
	DefaultSafetyLag = 5 * time.Minute
	DefaultTopN      = 10
)

// maxDuration is the protocol's longest row duration (7 days): how far back
// a row may start and still reach into a day.
const maxDuration = 7 * 24 * time.Hour

// sessionLookback bounds the search for the session state a period starts
// in.
const sessionLookback = 31 * 24 * time.Hour

// Engine computes the reports. One implementation behind the Dashboard API
// and staffctl.
type Engine struct {
	ts, main *pgxpool.Pool
	opts     Options
	sql      rawSQL
}

// rawSQL holds the hand-written statements (sql/raw/functions.sql).
type rawSQL struct {
	Settings, Claim, Source, Backlog string
}

//go:embed sql/raw/functions.sql
var rawFS embed.FS

func loadRaw() (rawSQL, error) {
	var r rawSQL
	err := sqlfile.Load(rawFS, "sql/raw/functions.sql", map[string]*string{"Settings": &r.Settings, "Claim": &r.Claim, "Source": &r.Source, "Backlog": &r.Backlog})
	if err != nil {
		return r, fmt.Errorf("report: %w", err)
	}
	return r, nil
}

// New returns an Engine reading the time series through ts and, when the
// time series live in a separate database, the main database (the
// organisation, its people and the fallback rows) through main (nil or ts
// otherwise). Both pools connect as the dashboard (or platform
// administrator) role.
func New(ts, main *pgxpool.Pool, opts Options) *Engine {
	if main == ts {
		main = nil
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SafetyLag <= 0 {
		opts.SafetyLag = DefaultSafetyLag
	}
	if opts.TopN <= 0 {
		opts.TopN = DefaultTopN
	}
	r, err := loadRaw()
	if err != nil {
		// The file is embedded and checked by the tests: a bug.
		panic(err)
	}
	return &Engine{ts: ts, main: main, opts: opts, sql: r}
}

// errStop ends a transaction whose consumer stopped iterating.
var errStop = errors.New("report: iteration stopped")

// session is one report's reads: the main database's queries (people,
// settings, fallback rows when separate) and the time series'.
type session struct {
	e        *Engine
	mainTx   pgx.Tx
	main, ts *reportdb.Queries
	split    bool // the time series live in a separate database (ts ≠ main)
	sc       *scope
}

// run runs fn in the tenant's transaction(s): one on main (or ts), and one
// on ts when separate.
func (e *Engine) run(ctx context.Context, t postgres.Tenant, p Period, q EmployeeDaysQuery, fn func(s *session) error) error {
	first := e.ts
	if e.main != nil {
		first = e.main
	}
	err := postgres.InTenant(ctx, first, t, func(tx pgx.Tx) error {
		s := &session{e: e, mainTx: tx, main: reportdb.New(tx)}
		sc, err := e.loadScope(ctx, s, p, q)
		if err != nil {
			return err
		}
		s.sc = sc
		if e.main == nil {
			s.ts = s.main
			return fn(s)
		}
		s.split = true
		return postgres.InTenant(ctx, e.ts, t, func(tstx pgx.Tx) error {
			s.ts = reportdb.New(tstx)
			return fn(s)
		})
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// employee is one employee in scope with its identities.
type employee struct {
	ID           int64
	DepartmentID *int64
	Number, Name string
	Status       string
	Sids         []string
	Cards        []string
	Numbers      []string // employee_number and employee_number identities
}

type department struct {
	ID       int64
	ParentID *int64
	Name     string
}

// scope is what one report covers.
type scope struct {
	settings    *Settings
	days        []dayOf // the period's days that have begun
	employees   []employee
	departments []department
	// numberOwner and cardOwner map every visible employee number and card
	// to its employee (attendance attribution, unknown badges).
	numberOwner, cardOwner map[string]int64
	sidOwner               map[string]int64
}

// parsePeriod checks p and returns its calendar dates.
func parsePeriod(p Period) (time.Time, time.Time, error) {
	from, err := time.Parse(time.DateOnly, p.From)
	if err != nil {
		return from, from, apperr.New(apperr.Invalid, "from", "from must be a date YYYY-MM-DD")
	}
	to, err := time.Parse(time.DateOnly, p.To)
	if err != nil {
		return from, to, apperr.New(apperr.Invalid, "to", "to must be a date YYYY-MM-DD")
	}
	if to.Before(from) {
		return from, to, apperr.New(apperr.Invalid, "to", "to must not be before from")
	}
	if n := int(to.Sub(from).Hours()/24) + 1; n > MaxDays {
		return from, to, apperr.New(apperr.Invalid, "to", "a period covers at most %d days, not %d", MaxDays, n)
	}
	return from, to, nil
}

// Settings reads the organisation's report settings in tx.
func (e *Engine) settings(ctx context.Context, tx pgx.Tx) (*Settings, error) {
	var zone string
	var policy []byte
	if err := tx.QueryRow(ctx, e.sql.Settings).Scan(&zone, &policy); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, apperr.New(apperr.NotFound, "", "no organisation in the tenant context")
		}
		return nil, fmt.Errorf("report: read settings: %w", err)
	}
	return ParseSettings(zone, policy)
}

func (e *Engine) loadScope(ctx context.Context, s *session, p Period, q EmployeeDaysQuery) (*scope, error) {
	from, to, err := parsePeriod(p)
	if err != nil {
		return nil, err
	}
	st, err := e.settings(ctx, s.mainTx)
	if err != nil {
		return nil, err
	}
	sc := &scope{settings: st, numberOwner: map[string]int64{}, cardOwner: map[string]int64{}, sidOwner: map[string]int64{}}
	now := e.opts.Now()
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		day := localDay(d, st.Location)
		if day.Start.After(now) {
			break
		}
		sc.days = append(sc.days, day)
	}
	deps, err := s.main.Departments(ctx)
	if err != nil {
		return nil, fmt.Errorf("report: read departments: %w", err)
	}
	for _, d := range deps {
		sc.departments = append(sc.departments, department{ID: d.ID, ParentID: d.ParentID, Name: d.Name})
	}
	params := reportdb.EmployeesParams{Ids: q.EmployeeIDs}
	if params.Ids == nil {
		params.Ids = []int64{}
	}
	params.Departments = []int64{}
	if q.DepartmentID != nil {
		params.ByDepartment = true
		params.Departments = subtree(sc.departments, *q.DepartmentID)
		if len(params.Departments) == 0 {
			return nil, apperr.New(apperr.NotFound, "department_id", "department %d not found", *q.DepartmentID)
		}
	}
	emps, err := s.main.Employees(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("report: read employees: %w", err)
	}
	idx := map[int64]int{}
	for _, r := range emps {
		idx[r.ID] = len(sc.employees)
		sc.employees = append(sc.employees, employee{ID: r.ID, DepartmentID: r.DepartmentID, Number: r.EmployeeNumber,
			Name: joinName(r.FirstName, r.LastName), Status: r.Status, Numbers: []string{r.EmployeeNumber}})
	}
	// Every visible identity: those of the selected employees, and the
	// owners for attribution.
	all, err := s.main.AllIdentities(ctx)
	if err != nil {
		return nil, fmt.Errorf("report: read identities: %w", err)
	}
	nums, err := s.main.AllEmployeeNumbers(ctx)
	if err != nil {
		return nil, fmt.Errorf("report: read employee numbers: %w", err)
	}
	for _, n := range nums {
		sc.numberOwner[n.EmployeeNumber] = n.ID
	}
	for _, r := range all {
		switch r.Kind {
		case "windows_sid":
			sc.sidOwner[r.Value] = r.EmployeeID
		case "card_number":
			sc.cardOwner[r.Value] = r.EmployeeID
		case "employee_number":
			if _, taken := sc.numberOwner[r.Value]; !taken {
				sc.numberOwner[r.Value] = r.EmployeeID
			}
		}
		i, ok := idx[r.EmployeeID]
		if !ok {
			continue
		}
		emp := &sc.employees[i]
		switch r.Kind {
		case "windows_sid":
			emp.Sids = append(emp.Sids, r.Value)
		case "card_number":
			emp.Cards = append(emp.Cards, r.Value)
		case "employee_number":
			if !slices.Contains(emp.Numbers, r.Value) {
				emp.Numbers = append(emp.Numbers, r.Value)
			}
		}
	}
	return sc, nil
}

func joinName(first, last string) string {
	switch {
	case first == "":
		return last
	case last == "":
		return first
	}
	return first + " " + last
}

// subtree lists root and every department below it (nil when root is not
// visible).
func subtree(deps []department, root int64) []int64 {
	children := map[int64][]int64{}
	found := false
	for _, d := range deps {
		if d.ID == root {
			found = true
		}
		if d.ParentID != nil {
			children[*d.ParentID] = append(children[*d.ParentID], d.ID)
		}
	}
	if !found {
		return nil
	}
	out := []int64{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// EmployeeDays streams the per-employee daily report: every employee in
// scope (q), every day of the period that has begun, employee by employee.
func (e *Engine) EmployeeDays(ctx context.Context, t postgres.Tenant, q EmployeeDaysQuery) iter.Seq2[EmployeeDay, error] {
	return func(yield func(EmployeeDay, error) bool) {
		err := e.run(ctx, t, q.Period, q, func(s *session) error {
			return s.eachEmployeeDays(ctx, true, func(_ employee, days []EmployeeDay) error {
				for _, d := range days {
					if !yield(d, nil) {
						return errStop
					}
				}
				return nil
			})
		})
		if err != nil {
			yield(EmployeeDay{}, err)
		}
	}
}

// chunkSize is how many employees' rows are read together: a few queries
// per chunk instead of per employee, memory bounded by the chunk.
const chunkSize = 25

// eachEmployeeDays computes the days of the scope's employees, a chunk at
// a time, and hands each employee's to fn in order.
func (s *session) eachEmployeeDays(ctx context.Context, sessions bool, fn func(employee, []EmployeeDay) error) error {
	emps := s.sc.employees
	for i := 0; i < len(emps); i += chunkSize {
		chunk := emps[i:min(i+chunkSize, len(emps))]
		acts, _, err := s.activity(ctx, chunk, false)
		if err != nil {
			return err
		}
		for k, emp := range chunk {
			days, err := s.employeeDays(ctx, emp, acts[k], sessions)
			if err != nil {
				return err
			}
			if err := fn(emp, days); err != nil {
				return err
			}
		}
	}
	return nil
}

// employeeDays builds one employee's days of the period from its activity.
func (s *session) employeeDays(ctx context.Context, emp employee, acts []dayActivity, sessions bool) ([]EmployeeDay, error) {
	sc := s.sc
	out := make([]EmployeeDay, len(sc.days))
	for i, d := range sc.days {
		out[i] = EmployeeDay{EmployeeID: emp.ID, EmployeeNumber: emp.Number, Name: emp.Name, DepartmentID: emp.DepartmentID,
			Date: d.Date, DayStart: d.Start, DayEnd: d.End, TopApplications: []Usage{}, TopSites: []Usage{}, Sessions: []SessionEvent{}}
	}
	if len(sc.days) == 0 || len(emp.Sids) == 0 {
		return out, nil
	}
	for i := range out {
		s.fill(&out[i], sc.days[i], acts[i])
	}
	if sessions {
		if err := s.sessions(ctx, emp.Sids, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dayActivity is the merged content of one employee-day: the OR of its
// sids' masks and the per-sid usage summed over sids.
type dayActivity struct {
	Mask  []byte
	Usage map[usageKey]usageValue
}

func (a *dayActivity) merge(d sidDay) {
	a.Mask = orMask(a.Mask, d.Mask)
	if a.Usage == nil {
		a.Usage = map[usageKey]usageValue{}
	}
	for k, v := range d.Usage {
		u := a.Usage[k]
		u.Seconds += v.Seconds
		u.Events += v.Events
		a.Usage[k] = u
	}
}

// activity reads the activity of a chunk of employees over the scope's
// days: from the rollups where they are valid, else from the raw rows.
// acts[k][i] is employee k's day i. With aggregate (summaries, which need
// no day's usage on its own), the usage of the days served by the rollups
// is summed over the period in the database instead: acts[k][i].Usage is
// then nil for those days and totals[k] holds their sum (totals is nil
// when the days' usage is in acts).
func (s *session) activity(ctx context.Context, emps []employee, aggregate bool) (acts [][]dayActivity, totals []map[usageKey]usageValue, err error) {
	days := s.sc.days
	acts = make([][]dayActivity, len(emps))
	raw := make([][]bool, len(emps))
	var sids []string
	for k, emp := range emps {
		acts[k] = make([]dayActivity, len(days))
		raw[k] = make([]bool, len(days))
		for i := range raw[k] {
			raw[k][i] = len(emp.Sids) > 0
		}
		sids = append(sids, emp.Sids...)
	}
	if len(sids) == 0 || len(days) == 0 {
		return acts, nil, nil
	}
	first, last := days[0], days[len(days)-1]
	// With a separate store, the main database's fallback rows: few, read
	// whole; a day they touch is computed raw.
	mainRows := map[string][]windowRow{}
	if s.split {
		rows, err := readRows(ctx, s.main, sids, first.Start, last.End)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rows {
			mainRows[r.sid] = append(mainRows[r.sid], r)
		}
	}
	if s.e.opts.UseRollups {
		if aggregate && sharedSid(emps) {
			// A sid of two employees may be served by the rollups for one
			// and not the other on the same day: sum day by day.
			aggregate = false
		}
		totals, err = s.rollups(ctx, emps, sids, acts, raw, mainRows, aggregate)
		if err != nil {
			return nil, nil, err
		}
	}
	// Raw: one read per run of consecutive days some employee of the chunk
	// needs raw.
	needed := func(i int) bool {
		for k := range emps {
			if raw[k][i] {
				return true
			}
		}
		return false
	}
	for i := 0; i < len(days); {
		if !needed(i) {
			i++
			continue
		}
		j := i
		for j+1 < len(days) && needed(j+1) {
			j++
		}
		rows, err := readRows(ctx, s.ts, sids, days[i].Start, days[j].End)
		if err != nil {
			return nil, nil, err
		}
		var fromMain []windowRow
		for _, sid := range sids {
			fromMain = append(fromMain, mainRows[sid]...)
		}
		rows = dedupe(rows, fromMain, days[i].Start, days[j].End)
		bySid := map[string][]interval{}
		for _, r := range rows {
			bySid[r.sid] = append(bySid[r.sid], r.iv)
		}
		for k, emp := range emps {
			for d := i; d <= j; d++ {
				if !raw[k][d] {
					continue
				}
				acts[k][d] = dayActivity{}
				for _, sid := range emp.Sids {
					acts[k][d].merge(computeSidDay(days[d], bySid[sid]))
				}
			}
		}
		i = j + 1
	}
	return acts, totals, nil
}

// sharedSid reports whether a sid is an identity of more than one of emps.
func sharedSid(emps []employee) bool {
	seen := map[string]bool{}
	for _, e := range emps {
		for _, sid := range e.Sids {
			if seen[sid] {
				return true
			}
			seen[sid] = true
		}
	}
	return false
}

// rollups fills acts from the rollups for the employee-days they serve
// and clears raw for those. With aggregate, the usage of those days is not
// put in acts but summed per employee over the period (see activity).
func (s *session) rollups(ctx context.Context, emps []employee, sids []string, acts [][]dayActivity, raw [][]bool, mainRows map[string][]windowRow, aggregate bool) ([]map[usageKey]usageValue, error) {
	days := s.sc.days
	now := s.e.opts.Now()
	zone := s.sc.settings.TimeZone
	first, last := days[0], days[len(days)-1]
	dayIndex := map[string]int{}
	for i, d := range days {
		dayIndex[d.Date] = i
	}
	fromDay, _ := time.Parse(time.DateOnly, first.Date)
	toDay, _ := time.Parse(time.DateOnly, last.Date)
	rows, err := s.ts.RollupDays(ctx, reportdb.RollupDaysParams{Sids: sids, FromDay: fromDay.AddDate(0, 0, -1), ToDay: toDay.AddDate(0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("report: read rollups: %w", err)
	}
	type key struct {
		sid, date string
	}
	current := map[key][]byte{}
	stale := map[key]bool{} // a row in another zone: the days around it are unknown
	for _, r := range rows {
		k := key{r.UserSid, r.Day.Format(time.DateOnly)}
		if r.TimeZone == zone {
			current[k] = r.ActiveMinutes
			continue
		}
		for _, dd := range []int{-1, 0, 1} {
			stale[key{r.UserSid, r.Day.AddDate(0, 0, dd).Format(time.DateOnly)}] = true
		}
	}
	dirtyRows, err := s.ts.DirtyHours(ctx, reportdb.DirtyHoursParams{Sids: sids, FromTime: first.Start.Add(-time.Hour), ToTime: last.End})
	if err != nil {
		return nil, fmt.Errorf("report: read dirty hours: %w", err)
	}
	dirty := map[string][]time.Time{}
	for _, h := range dirtyRows {
		dirty[h.UserSid] = append(dirty[h.UserSid], h.Hour)
	}
	// clean: sid's day i may come from the rollups.
	clean := func(sid string, i int) bool {
		d := days[i]
		k := key{sid, d.Date}
		if _, has := current[k]; !has && stale[k] {
			return false
		}
		for _, h := range dirty[sid] {
			if h.Before(d.End) && h.Add(time.Hour).After(d.Start) {
				return false
			}
		}
		for _, r := range mainRows[sid] {
			if r.iv.overlaps(d) {
				return false
			}
		}
		return true
	}
	// Which employee-days the rollups serve: closed, and every sid clean.
	cut := now.Add(-s.e.opts.SafetyLag)
	for k, emp := range emps {
		for i, d := range days {
			if d.End.After(cut) || len(emp.Sids) == 0 {
				continue
			}
			ok := true
			for _, sid := range emp.Sids {
				if !clean(sid, i) {
					ok = false
					break
				}
			}
			if !ok {
				continue
			}
			raw[k][i] = false
			a := dayActivity{}
			for _, sid := range emp.Sids {
				if m, has := current[key{sid, d.Date}]; has {
					a.Mask = orMask(a.Mask, m)
				}
			}
			acts[k][i] = a
		}
	}
	if aggregate {
		return s.rollupTotals(ctx, emps, sids, raw, fromDay, toDay)
	}
	usage, err := s.ts.RollupUsage(ctx, reportdb.RollupUsageParams{Sids: sids, FromDay: fromDay, ToDay: toDay})
	if err != nil {
		return nil, fmt.Errorf("report: read rollup usage: %w", err)
	}
	type sidDayKey struct {
		sid string
		day int
	}
	usageOf := map[sidDayKey][]reportdb.RollupUsageRow{}
	for _, u := range usage {
		if i, ok := dayIndex[u.Day.Format(time.DateOnly)]; ok {
			usageOf[sidDayKey{u.UserSid, i}] = append(usageOf[sidDayKey{u.UserSid, i}], u)
		}
	}
	for k, emp := range emps {
		for i := range days {
			if raw[k][i] || len(emp.Sids) == 0 {
				continue
			}
			a := &acts[k][i]
			a.Usage = map[usageKey]usageValue{}
			for _, sid := range emp.Sids {
				for _, u := range usageOf[sidDayKey{sid, i}] {
					uk := usageKey{Kind: u.Kind, Process: u.ProcessName, Host: u.Host}
					v := a.Usage[uk]
					v.Seconds += u.Seconds
					v.Events += u.Events
					a.Usage[uk] = v
				}
			}
		}
	}
	return nil, nil
}

// rollupTotals sums, per employee, the rollups' usage of the days they
// serve (raw[k][i] false): one statement that groups over the period and
// leaves out every (sid, day) read raw. No sid is shared by two of emps.
func (s *session) rollupTotals(ctx context.Context, emps []employee, sids []string, raw [][]bool, fromDay, toDay time.Time) ([]map[usageKey]usageValue, error) {
	days := s.sc.days
	owner := map[string]int{}
	skip := reportdb.RollupUsageTotalsParams{Sids: sids, FromDay: fromDay, ToDay: toDay, SkipSids: []string{}, SkipDays: []time.Time{}}
	for k, emp := range emps {
		for _, sid := range emp.Sids {
			owner[sid] = k
		}
		for i, d := range days {
			if !raw[k][i] {
				continue
			}
			day, _ := time.Parse(time.DateOnly, d.Date)
			for _, sid := range emp.Sids {
				skip.SkipSids = append(skip.SkipSids, sid)
				skip.SkipDays = append(skip.SkipDays, day)
			}
		}
	}
	rows, err := s.ts.RollupUsageTotals(ctx, skip)
	if err != nil {
		return nil, fmt.Errorf("report: read rollup usage totals: %w", err)
	}
	totals := make([]map[usageKey]usageValue, len(emps))
	for _, r := range rows {
		k, ok := owner[r.UserSid]
		if !ok {
			continue
		}
		if totals[k] == nil {
			totals[k] = map[usageKey]usageValue{}
		}
		uk := usageKey{Kind: r.Kind, Process: r.ProcessName, Host: r.Host}
		v := totals[k][uk]
		v.Seconds += r.Seconds
		v.Events += r.Events
		totals[k][uk] = v
	}
	return totals, nil
}

// windowRow is one activity row read raw.
type windowRow struct {
	id  uuid.UUID
	sid string
	iv  interval
}

// readRows reads the window and site rows of sids that may reach into
// [from, to).
func readRows(ctx context.Context, q *reportdb.Queries, sids []string, from, to time.Time) ([]windowRow, error) {
	var out []windowRow
	ws, err := q.Windows(ctx, reportdb.WindowsParams{Sids: sids, Lookback: from.Add(-maxDuration), ToTime: to, FromTime: from})
	if err != nil {
		return nil, fmt.Errorf("report: read windows: %w", err)
	}
	for _, w := range ws {
		out = append(out, windowRow{id: w.ID, sid: w.UserSid, iv: interval{Kind: "window", Process: deref(w.ProcessName),
			Host: hostOf(deref(w.Url)), At: w.Datetime, Seconds: seconds(w.DurationSeconds)}})
	}
	ss, err := q.Sites(ctx, reportdb.SitesParams{Sids: sids, Lookback: from.Add(-maxDuration), ToTime: to, FromTime: from})
	if err != nil {
		return nil, fmt.Errorf("report: read sites: %w", err)
	}
	for _, v := range ss {
		out = append(out, windowRow{id: v.ID, sid: v.UserSid, iv: interval{Kind: "site", Host: hostOf(v.Url),
			At: v.Datetime, Seconds: seconds(v.DurationSeconds)}})
	}
	return out, nil
}

// dedupe adds the main database's rows reaching into [from, to) to rows,
// each event once.
func dedupe(rows, mainRows []windowRow, from, to time.Time) []windowRow {
	if len(mainRows) == 0 {
		return rows
	}
	seen := map[uuid.UUID]bool{}
	for _, r := range rows {
		seen[r.id] = true
	}
	span := dayOf{Start: from, End: to}
	for _, r := range mainRows {
		if !seen[r.id] && r.iv.overlaps(span) {
			seen[r.id] = true
			rows = append(rows, r)
		}
	}
	return rows
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func seconds(d *int32) int64 {
	if d == nil || *d < 0 {
		return 0
	}
	return int64(*d)
}

// fill computes an EmployeeDay's activity fields from its merged content.
func (s *session) fill(out *EmployeeDay, d dayOf, a dayActivity) {
	st := s.sc.settings
	m := measure(a.Mask, d.minutes(), st.idleMinutes())
	out.OccupiedSeconds = 60 * int64(m.Occupied)
	out.ActiveSeconds = 60 * int64(m.Occupied+m.ShortPause)
	out.IdleSeconds = 60 * int64(m.Idle)
	if m.First >= 0 {
		f := d.Start.Add(time.Duration(m.First) * time.Minute)
		l := d.Start.Add(time.Duration(m.Last+1) * time.Minute)
		if l.After(d.End) {
			l = d.End
		}
		out.FirstActivity, out.LastActivity = &f, &l
	}
	apps := map[string]*Usage{}
	sites := map[string]*Usage{}
	for k, v := range a.Usage {
		switch k.Kind {
		case "window":
			switch st.classify(k.Process, k.Host) {
			case Productive:
				out.ProductiveSeconds += v.Seconds
			case Unproductive:
				out.UnproductiveSeconds += v.Seconds
			default:
				out.NeutralSeconds += v.Seconds
			}
			if k.Process == "" {
				continue
			}
			u := apps[k.Process]
			if u == nil {
				u = &Usage{Name: k.Process, Category: st.classify(k.Process, "")}
				apps[k.Process] = u
			}
			u.Seconds += v.Seconds
			u.Events += v.Events
		case "site":
			if k.Host == "" {
				continue
			}
			u := sites[k.Host]
			if u == nil {
				u = &Usage{Name: k.Host, Category: st.siteClass(k.Host)}
				sites[k.Host] = u
			}
			u.Seconds += v.Seconds
			u.Events += v.Events
		}
	}
	out.TopApplications = top(apps, s.e.opts.TopN)
	out.TopSites = top(sites, s.e.opts.TopN)
}

// top lists the n largest usages, by seconds then name.
func top(m map[string]*Usage, n int) []Usage {
	out := make([]Usage, 0, len(m))
	for _, u := range m {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b Usage) int {
		if c := cmp.Compare(b.Seconds, a.Seconds); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// sessions fills the days' session timelines.
func (s *session) sessions(ctx context.Context, sids []string, out []EmployeeDay) error {
	days := s.sc.days
	first, last := days[0], days[len(days)-1]
	var events []SessionEvent
	seen := map[uuid.UUID]bool{}
	var carried *SessionEvent
	for _, q := range s.queries() {
		rows, err := q.Sessions(ctx, reportdb.SessionsParams{Sids: sids, FromTime: first.Start, ToTime: last.End})
		if err != nil {
			return fmt.Errorf("report: read sessions: %w", err)
		}
		for _, r := range rows {
			if !seen[r.ID] {
				seen[r.ID] = true
				events = append(events, SessionEvent{Type: r.SessionType, At: r.Datetime, Computer: r.ComputerUid})
			}
		}
		before, err := q.SessionBefore(ctx, reportdb.SessionBeforeParams{Sids: sids, Since: first.Start.Add(-sessionLookback), Before: first.Start})
		if err != nil {
			return fmt.Errorf("report: read the session before: %w", err)
		}
		for _, r := range before {
			ev := SessionEvent{Type: r.SessionType, At: r.Datetime, Computer: r.ComputerUid}
			if carried == nil || sessionLess(*carried, ev) {
				carried = &ev
			}
		}
	}
	slices.SortFunc(events, func(a, b SessionEvent) int {
		if sessionLess(a, b) {
			return -1
		}
		if sessionLess(b, a) {
			return 1
		}
		return 0
	})
	j := 0
	for i, d := range days {
		if carried != nil {
			c := *carried
			out[i].CarriedSession = &c
		}
		for ; j < len(events) && events[j].At.Before(d.End); j++ {
			out[i].Sessions = append(out[i].Sessions, events[j])
			ev := events[j]
			carried = &ev
		}
	}
	return nil
}

// sessionLess orders session events by time, computer, type.
func sessionLess(a, b SessionEvent) bool {
	if !a.At.Equal(b.At) {
		return a.At.Before(b.At)
	}
	if a.Computer != b.Computer {
		return a.Computer < b.Computer
	}
	return a.Type < b.Type
}

// queries are the databases to read events from: ts, and main when
// separate.
func (s *session) queries() []*reportdb.Queries {
	if s.split {
		return []*reportdb.Queries{s.ts, s.main}
	}
	return []*reportdb.Queries{s.ts}
}
