package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/report"
)

func hr(org int64) postgres.Tenant {
	return postgres.Tenant{OrganizationID: org, Role: postgres.AppHR, Actor: "hr"}
}

func lead(org, dept int64) postgres.Tenant {
	return postgres.Tenant{OrganizationID: org, Role: postgres.AppDepartmentLead, Scope: fmt.Sprintf("department:%d", dept), Actor: "lead"}
}

func self(org, emp int64) postgres.Tenant {
	return postgres.Tenant{OrganizationID: org, Role: postgres.AppEmployee, Scope: fmt.Sprintf("employee:%d", emp), Actor: "me"}
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// js is v as JSON with every time in UTC (the engine's times come in the
// database's zone, the expected ones in Berlin's).
func js(t *testing.T, v any) string {
	t.Helper()
	switch x := v.(type) {
	case report.EmployeeDay:
		x.DayStart, x.DayEnd = x.DayStart.UTC(), x.DayEnd.UTC()
		x.FirstActivity, x.LastActivity = utc(x.FirstActivity), utc(x.LastActivity)
		for i := range x.Sessions {
			x.Sessions[i].At = x.Sessions[i].At.UTC()
		}
		if x.CarriedSession != nil {
			c := *x.CarriedSession
			c.At = c.At.UTC()
			x.CarriedSession = &c
		}
		v = x
	case report.AttendanceDay:
		x.FirstIn, x.LastOut = utc(x.FirstIn), utc(x.LastOut)
		v = x
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func collect[T any](t *testing.T, seq func(func(T, error) bool)) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// compareDays checks got against want, line by line.
func compareDays(t *testing.T, what string, got, want []report.EmployeeDay) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range want {
		if g, w := js(t, got[i]), js(t, want[i]); g != w {
			if bad++; bad <= 3 {
				t.Errorf("%s: row %d (%d %s):\n got %s\nwant %s", what, i, want[i].EmployeeID, want[i].Date, g, w)
			}
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d rows differ", what, bad)
	}
}

// expectDays is the expected per-employee report of people over p.
func (ds *dataset) expectDays(p [2]string, people ...person) []report.EmployeeDay {
	var out []report.EmployeeDay
	for _, emp := range people {
		for _, d := range ds.days(p) {
			out = append(out, ds.expectDay(emp, d, ds.days(p)[0]))
		}
	}
	return out
}

func q(p [2]string) report.EmployeeDaysQuery {
	return report.EmployeeDaysQuery{Period: report.Period{From: p[0], To: p[1]}}
}

// TestReportsMatchBruteForce: on a generated dataset (overlapping windows,
// rows across midnight and over days, both DST changes of Berlin, an
// employee with two sids, a fifth of the rows in the fallback and some in
// both stores, badges by number, card and number identity, unknown
// badges, another organisation with the same sids), every report equals
// the answer computed in the test, read raw and read from the rollups
// after maintenance alike.
func TestReportsMatchBruteForce(t *testing.T) {
	t.Parallel()
	ds := newDataset(t)
	ctx := context.Background()
	org := ds.a.OrganizationID
	raw := report.New(ds.dashboard, nil, report.Options{})
	rolled := report.New(ds.dashboard, nil, report.Options{UseRollups: true})
	check := func(t *testing.T, e *report.Engine) {
		for _, p := range ds.periods {
			compareDays(t, "days "+p[0], collect(t, e.EmployeeDays(ctx, hr(org), q(p))), ds.expectDays(p, ds.sorted()...))
			// Attendance: badge days and scheduled days.
			var want []report.AttendanceDay
			for _, emp := range ds.sorted() {
				for _, d := range ds.days(p) {
					if a := ds.expectAttendance(emp, d); a.Badges > 0 || a.Scheduled {
						want = append(want, a)
					}
				}
			}
			got := collect(t, e.Attendance(ctx, hr(org), q(p)))
			if len(got) != len(want) {
				t.Errorf("attendance %s: %d rows, want %d", p[0], len(got), len(want))
			} else {
				for i := range want {
					if g, w := js(t, got[i]), js(t, want[i]); g != w {
						t.Errorf("attendance %s row %d:\n got %s\nwant %s", p[0], i, g, w)
					}
				}
			}
			// Reconcile.
			var wantM []string
			for _, emp := range ds.sorted() {
				for _, d := range ds.days(p) {
					a, day := ds.expectAttendance(emp, d), ds.expectDay(emp, d, d)
					switch {
					case a.Badges > 0 && day.OccupiedSeconds == 0:
						wantM = append(wantM, fmt.Sprint(emp.id, d.Format(time.DateOnly), report.BadgeWithoutActivity))
					case a.Badges == 0 && day.OccupiedSeconds > 0:
						wantM = append(wantM, fmt.Sprint(emp.id, d.Format(time.DateOnly), report.ActivityWithoutBadge))
					}
				}
			}
			var gotM []string
			for _, m := range collect(t, e.Reconcile(ctx, hr(org), q(p))) {
				gotM = append(gotM, fmt.Sprint(m.EmployeeID, m.Date, m.Kind))
			}
			if !slices.Equal(gotM, wantM) || len(wantM) == 0 {
				t.Errorf("reconcile %s: %v, want %v", p[0], gotM, wantM)
			}
			unknown, err := e.UnknownBadges(ctx, hr(org), report.Period{From: p[0], To: p[1]})
			if err != nil {
				t.Fatal(err)
			}
			if n := 2 * len(ds.days(p)); len(unknown) != n || unknown[0].CardNumber != "C-UNK" {
				t.Errorf("unknown badges %s: %d (%+v), want %d", p[0], len(unknown), unknown, n)
			}
			// Summary: the organisation, and a subtree.
			s, err := e.Summary(ctx, hr(org), report.SummaryQuery{Period: report.Period{From: p[0], To: p[1]}})
			if err != nil {
				t.Fatal(err)
			}
			ds.checkSummary(t, s, p, nil)
			s, err = e.Summary(ctx, hr(org), report.SummaryQuery{Period: report.Period{From: p[0], To: p[1]}, DepartmentID: &ds.eng})
			if err != nil {
				t.Fatal(err)
			}
			ds.checkSummary(t, s, p, &ds.eng)
		}
	}
	t.Run("raw", func(t *testing.T) { check(t, raw) })
	t.Run("rollups before maintenance", func(t *testing.T) { check(t, rolled) })
	m := report.NewMaintainer(ds.ingest, nil, report.MaintainerConfig{})
	res, err := m.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sids == 0 || res.Days == 0 {
		t.Fatalf("maintenance did nothing: %+v", res)
	}
	t.Logf("maintenance: %+v", res)
	t.Run("rollups", func(t *testing.T) { check(t, rolled) })
	// Late rows on rolled-up days: those employee-days are dirty and read
	// raw, the others still from the rollups (a summary must leave the
	// dirty days' rollups out of its sums, not add both).
	late := []row{
		ds.mk("window", "S-E2", "code.exe", "", time.Date(2026, 3, 28, 10, 0, 0, 0, time.UTC), 1800, 0),
		ds.mk("window", "S-E1b", "game.exe", "", time.Date(2026, 3, 29, 23, 30, 0, 0, time.UTC), 3600, 0),
		ds.mk("site", "S-E3", "", "https://news.example/late", time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC), 600, 0),
	}
	for i := range late {
		late[i].schema, late[i].both = "monitoring", false
	}
	ds.rows = append(ds.rows, late...)
	if err := postgres.InTenant(ctx, ds.ingest, postgres.Tenant{OrganizationID: org}, func(tx pgx.Tx) error {
		return insertRows(ctx, tx, "monitoring", "", org, ds.a.GatewayID, late)
	}); err != nil {
		t.Fatal(err)
	}
	t.Run("rollups with late rows", func(t *testing.T) { check(t, rolled) })
	// The rollups are what the engine read: spoil one and see it.
	if _, err := ds.admin.Exec(ctx, `UPDATE monitoring.activity_days SET active_minutes = '\x00'::bytea || substring(active_minutes from 2)
		WHERE organization_id = $1 AND user_sid = 'S-E2' AND day = '2026-03-30'`, org); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.admin.Exec(ctx, `UPDATE monitoring.activity_days SET active_minutes = decode(repeat('ff', length(active_minutes)), 'hex')
		WHERE organization_id = $1 AND user_sid = 'S-E2' AND day = '2026-03-30'`, org); err != nil {
		t.Fatal(err)
	}
	days := collect(t, rolled.EmployeeDays(ctx, hr(org), report.EmployeeDaysQuery{Period: report.Period{From: "2026-03-30", To: "2026-03-30"}, EmployeeIDs: []int64{ds.people[1].id}}))
	if len(days) != 1 || days[0].OccupiedSeconds != 24*3600 {
		t.Errorf("a spoilt rollup was not read: %+v", days)
	}
}

// checkSummary compares a summary with the sums of the expected days.
func (ds *dataset) checkSummary(t *testing.T, s report.Summary, p [2]string, dept *int64) {
	t.Helper()
	totals := map[int64]report.Totals{}
	var in []int64
	for _, emp := range ds.people {
		if dept != nil && emp.dept != ds.eng && emp.dept != ds.ops {
			continue
		}
		in = append(in, emp.id)
		var tot report.Totals
		for _, d := range ds.days(p) {
			x := ds.expectDay(emp, d, d)
			tot.ActiveSeconds += x.ActiveSeconds
			tot.IdleSeconds += x.IdleSeconds
			tot.OccupiedSeconds += x.OccupiedSeconds
			tot.ProductiveSeconds += x.ProductiveSeconds
			tot.NeutralSeconds += x.NeutralSeconds
			tot.UnproductiveSeconds += x.UnproductiveSeconds
			if x.OccupiedSeconds > 0 {
				tot.DaysActive++
			}
		}
		totals[emp.id] = tot
	}
	if len(s.Employees) != len(in) {
		t.Fatalf("summary %s: %d employees, want %d", p[0], len(s.Employees), len(in))
	}
	var sum report.Totals
	for i, e := range s.Employees {
		if e.Rank != i+1 || (i > 0 && e.ActiveSeconds > s.Employees[i-1].ActiveSeconds) {
			t.Errorf("summary %s: rank %d out of order", p[0], e.Rank)
		}
		if e.Totals != totals[e.EmployeeID] {
			t.Errorf("summary %s: employee %d totals %+v, want %+v", p[0], e.EmployeeID, e.Totals, totals[e.EmployeeID])
		}
		sum.ActiveSeconds += e.ActiveSeconds
		sum.DaysActive += e.DaysActive
	}
	if s.Totals.ActiveSeconds != sum.ActiveSeconds || s.Totals.DaysActive != sum.DaysActive {
		t.Errorf("summary %s: totals %+v, sum of employees %+v", p[0], s.Totals, sum)
	}
	for _, d := range s.Departments {
		var want int64
		for _, emp := range ds.people {
			under := emp.dept == d.DepartmentID || (d.DepartmentID == ds.root && (emp.dept == ds.eng || emp.dept == ds.ops)) ||
				(d.DepartmentID == ds.eng && emp.dept == ds.ops)
			if under {
				want += totals[emp.id].ActiveSeconds
			}
		}
		if d.ActiveSeconds != want {
			t.Errorf("summary %s: department %s active %d, want %d", p[0], d.Name, d.ActiveSeconds, want)
		}
	}
	if dept == nil && (s.Unattributed.Sids != 1 || s.Unattributed.Samples[0] != "S-UNK") {
		t.Errorf("summary %s: unattributed %+v, want S-UNK", p[0], s.Unattributed)
	}
	if dept != nil && len(s.Departments) != 2 {
		t.Errorf("summary %s of eng: departments %+v, want eng and ops", p[0], s.Departments)
	}
}

// TestScopes: the same report as HR, as the lead of Eng (Eng and Ops) and
// as an employee returns exactly their rows; the other organisation sees
// none of A's.
func TestScopes(t *testing.T) {
	t.Parallel()
	ds := newDataset(t)
	ctx := context.Background()
	org := ds.a.OrganizationID
	p := ds.periods[0]
	for _, rollups := range []bool{false, true} {
		e := report.New(ds.dashboard, nil, report.Options{UseRollups: rollups})
		if rollups {
			if _, err := report.NewMaintainer(ds.ingest, nil, report.MaintainerConfig{}).RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
		}
		compareDays(t, "lead", collect(t, e.EmployeeDays(ctx, lead(org, ds.eng), q(p))), ds.expectDays(p, ds.people[0], ds.people[1]))
		compareDays(t, "employee", collect(t, e.EmployeeDays(ctx, self(org, ds.people[2].id), q(p))), ds.expectDays(p, ds.people[2]))
		// An employee asking for another employee gets nothing.
		other := q(p)
		other.EmployeeIDs = []int64{ds.people[0].id}
		if got := collect(t, e.EmployeeDays(ctx, self(org, ds.people[2].id), other)); len(got) != 0 {
			t.Errorf("an employee read another's days: %d rows", len(got))
		}
		att := collect(t, e.Attendance(ctx, lead(org, ds.eng), q(p)))
		for _, a := range att {
			if a.EmployeeID != ds.people[0].id && a.EmployeeID != ds.people[1].id {
				t.Errorf("lead's attendance holds employee %d", a.EmployeeID)
			}
		}
		if u, err := e.UnknownBadges(ctx, lead(org, ds.eng), report.Period{From: p[0], To: p[1]}); err != nil || len(u) != 0 {
			t.Errorf("lead's unknown badges: %v %v", u, err)
		}
		s, err := e.Summary(ctx, lead(org, ds.eng), report.SummaryQuery{Period: report.Period{From: p[0], To: p[1]}})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Employees) != 2 || s.Unattributed.Sids != 0 {
			t.Errorf("lead's summary: %+v", s)
		}
		// B: its one seeded employee, no activity of A's rows with the same sids.
		b := collect(t, e.EmployeeDays(ctx, hr(ds.b.OrganizationID), q(p)))
		if len(b) != 5 {
			t.Fatalf("B: %d rows, want 5", len(b))
		}
		for _, d := range b {
			if d.OccupiedSeconds != 0 || d.EmployeeID != ds.b.EmployeeID {
				t.Errorf("B sees %+v", d)
			}
		}
		sb, err := e.Summary(ctx, hr(ds.b.OrganizationID), report.SummaryQuery{Period: report.Period{From: p[0], To: p[1]}})
		if err != nil {
			t.Fatal(err)
		}
		// B's noise rows carry A's sids: none is B's employee's.
		if sb.Unattributed.Sids != 6 {
			t.Errorf("B unattributed: %+v, want A's 6 sids", sb.Unattributed)
		}
	}
}

// TestMaintainerIncremental: a second run finds nothing; a late row for a
// closed day marks it dirty, the engine reads it raw until the next run
// recomputes exactly that pair's days; concurrent maintainers share the
// work without overlap.
func TestMaintainerIncremental(t *testing.T) {
	t.Parallel()
	ds := newDataset(t)
	ctx := context.Background()
	org := ds.a.OrganizationID
	e := report.New(ds.dashboard, nil, report.Options{UseRollups: true})
	// Concurrent maintainers.
	var wg sync.WaitGroup
	results := make([]report.Result, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := report.NewMaintainer(ds.ingest, nil, report.MaintainerConfig{SidsPerClaim: 1})
			r, err := m.RunOnce(ctx)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	var sids int
	for _, r := range results {
		sids += r.Sids
	}
	// Every pair with a rollup was claimed exactly once (A's 6 sids, B's 6).
	var pairs int
	if err := ds.admin.QueryRow(ctx, `SELECT count(DISTINCT (organization_id, user_sid)) FROM monitoring.activity_days WHERE day <= '2026-10-27'`).Scan(&pairs); err != nil {
		t.Fatal(err)
	}
	if sids != pairs {
		t.Errorf("concurrent maintainers claimed %d pairs (%+v), want each of %d once", sids, results, pairs)
	}
	m := report.NewMaintainer(ds.ingest, nil, report.MaintainerConfig{})
	if r, err := m.RunOnce(ctx); err != nil || r.Sids != 0 {
		t.Fatalf("second run: %+v %v, want nothing", r, err)
	}
	// A late row for 03-30 of S-E2 (closed long ago).
	p := [2]string{"2026-03-30", "2026-03-30"}
	late := ds.mk("window", "S-E2", "game.exe", "", time.Date(2026, 3, 30, 3, 0, 0, 0, ds.loc), 1800, 0)
	late.schema, late.both = "monitoring", false
	ds.rows = append(ds.rows, late)
	if err := postgres.InTenant(ctx, ds.ingest, postgres.Tenant{OrganizationID: org}, func(tx pgx.Tx) error {
		return insertRows(ctx, tx, "monitoring", "", org, ds.a.GatewayID, []row{late})
	}); err != nil {
		t.Fatal(err)
	}
	if b, err := m.Backlog(ctx); err != nil || b.Hours != 1 || b.Sids != 1 || !b.Oldest.Equal(time.Date(2026, 3, 30, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("backlog of the late row: %+v %v, want 1 hour of 1 sid, 01:00 UTC", b, err)
	}
	want := ds.expectDays(p, ds.people[1])
	compareDays(t, "dirty day read raw", collect(t, e.EmployeeDays(ctx, hr(org), report.EmployeeDaysQuery{Period: report.Period{From: p[0], To: p[1]}, EmployeeIDs: []int64{ds.people[1].id}})), want)
	r, err := m.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sids != 1 || r.Hours != 1 || r.Days != 1 {
		t.Errorf("late row: recomputed %+v, want 1 sid, 1 hour, 1 day", r)
	}
	compareDays(t, "recomputed", collect(t, e.EmployeeDays(ctx, hr(org), report.EmployeeDaysQuery{Period: report.Period{From: p[0], To: p[1]}, EmployeeIDs: []int64{ds.people[1].id}})), want)
	if b, err := m.Backlog(ctx); err != nil || b.Hours != 0 || b.Sids != 0 || !b.Oldest.IsZero() {
		t.Errorf("backlog after the run: %+v %v, want none", b, err)
	}
}

// TestMaintainerMetrics: the running maintainer exports the days it
// recomputed and, after each run, the backlog it left (none).
func TestMaintainerMetrics(t *testing.T) {
	t.Parallel()
	ds := newDataset(t)
	reg := prometheus.NewRegistry()
	m := report.NewMaintainer(ds.ingest, nil, report.MaintainerConfig{Interval: 50 * time.Millisecond,
		Metrics: report.NewMaintainerMetrics(reg), Store: "main"})
	if b, err := m.Backlog(context.Background()); err != nil || b.Hours == 0 {
		t.Fatalf("backlog before any run: %+v %v, want the dataset's hours", b, err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	value := func(name string) (float64, bool) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, mm := range mf.GetMetric() {
				for _, l := range mm.GetLabel() {
					if l.GetName() == "store" && l.GetValue() == "main" {
						if c := mm.GetCounter(); c != nil {
							return c.GetValue(), true
						}
						return mm.GetGauge().GetValue(), true
					}
				}
			}
		}
		return 0, false
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		days, _ := value("report_rollup_days_total")
		hours, seen := value("report_rollup_backlog_hours")
		last, _ := value("report_rollup_last_success_timestamp_seconds")
		if days > 0 && seen && hours == 0 && last > 0 {
			if age, ok := value("report_rollup_backlog_oldest_seconds"); !ok || age != 0 {
				t.Errorf("oldest backlog age %v (%v), want 0", age, ok)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics after 30 s: days %v, backlog hours %v (%v), last success %v", days, hours, seen, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBadInput: periods refused naming the field.
func TestBadInput(t *testing.T) {
	t.Parallel()
	ds := newDataset(t)
	e := report.New(ds.dashboard, nil, report.Options{})
	for _, tt := range []struct {
		p     report.Period
		field string
	}{
		{report.Period{From: "2026-13-01", To: "2026-12-01"}, "from"},
		{report.Period{From: "2026-01-01", To: "yesterday"}, "to"},
		{report.Period{From: "2026-02-01", To: "2026-01-01"}, "to"},
		{report.Period{From: "2024-01-01", To: "2026-01-01"}, "to"},
	} {
		_, err := e.Summary(context.Background(), hr(ds.a.OrganizationID), report.SummaryQuery{Period: tt.p})
		if ae := apperr.As(err); ae == nil || ae.Field != tt.field {
			t.Errorf("%+v: %v, want an error naming %s", tt.p, err, tt.field)
		}
	}
}
