package report

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/report/reportdb"
)

// maxUnattributedSamples bounds the sids a summary names.
const maxUnattributedSamples = 100

// Summary sums the period per employee of the organisation or of a
// department's subtree, ranks employees and departments by active time and
// counts the unattributed sids. Memory: one line per employee and
// department.
func (e *Engine) Summary(ctx context.Context, t postgres.Tenant, q SummaryQuery) (Summary, error) {
	out := Summary{Period: q.Period, DepartmentID: q.DepartmentID, Employees: []EmployeeTotals{}, Departments: []DepartmentTotals{},
		Unattributed: Unattributed{Samples: []string{}}}
	err := e.run(ctx, t, q.Period, EmployeeDaysQuery{Period: q.Period, DepartmentID: q.DepartmentID}, func(s *session) error {
		sc := s.sc
		out.TimeZone = sc.settings.TimeZone
		byDept := map[int64][]int{} // department → indexes into out.Employees
		err := s.eachEmployeeTotals(ctx, func(emp employee, t Totals) error {
			line := EmployeeTotals{EmployeeID: emp.ID, EmployeeNumber: emp.Number, Name: emp.Name, DepartmentID: emp.DepartmentID, Totals: t}
			out.Totals.add(line.Totals)
			if emp.DepartmentID != nil {
				byDept[*emp.DepartmentID] = append(byDept[*emp.DepartmentID], len(out.Employees))
			}
			out.Employees = append(out.Employees, line)
			return nil
		})
		if err != nil {
			return err
		}
		// Departments: those of the scope (the subtree, or all visible),
		// each with its subtree's sums.
		var roots []department
		if q.DepartmentID != nil {
			ids := subtree(sc.departments, *q.DepartmentID)
			for _, d := range sc.departments {
				if slices.Contains(ids, d.ID) {
					roots = append(roots, d)
				}
			}
		} else {
			roots = sc.departments
		}
		for _, d := range roots {
			line := DepartmentTotals{DepartmentID: d.ID, Name: d.Name, ParentID: d.ParentID}
			for _, id := range subtree(sc.departments, d.ID) {
				for _, i := range byDept[id] {
					line.add(out.Employees[i].Totals)
					line.Employees++
				}
			}
			out.Departments = append(out.Departments, line)
		}
		slices.SortStableFunc(out.Employees, func(a, b EmployeeTotals) int {
			if c := cmp.Compare(b.ActiveSeconds, a.ActiveSeconds); c != 0 {
				return c
			}
			return cmp.Compare(a.EmployeeID, b.EmployeeID)
		})
		for i := range out.Employees {
			out.Employees[i].Rank = i + 1
		}
		slices.SortStableFunc(out.Departments, func(a, b DepartmentTotals) int {
			if c := cmp.Compare(b.ActiveSeconds, a.ActiveSeconds); c != 0 {
				return c
			}
			return cmp.Compare(a.DepartmentID, b.DepartmentID)
		})
		for i := range out.Departments {
			out.Departments[i].Rank = i + 1
		}
		if q.DepartmentID == nil && len(sc.days) > 0 {
			u, err := s.unattributed(ctx)
			if err != nil {
				return err
			}
			out.Unattributed = u
		}
		return nil
	})
	return out, err
}

// summaryChunk is how many employees a summary reads together: its reads
// return sums and masks, not rows, so chunks are much larger than a daily
// report's and the statements (each re-verifying the tenant context) few:
// one set for an organisation of up to 2,000 employees.
const summaryChunk = 2000

// eachEmployeeTotals computes the period's totals of the scope's employees,
// a chunk at a time, and hands each employee's to fn in order. The same
// sums as adding up the employees' days of EmployeeDays, without
// building the days: the rollups' usage comes summed over the period, and
// each (process, host) is classified once.
func (s *session) eachEmployeeTotals(ctx context.Context, fn func(employee, Totals) error) error {
	sc := s.sc
	st := sc.settings
	class := map[usageKey]string{}
	classify := func(k usageKey) string {
		c, ok := class[k]
		if !ok {
			c = st.classify(k.Process, k.Host)
			class[k] = c
		}
		return c
	}
	addUsage := func(t *Totals, u map[usageKey]usageValue) {
		for k, v := range u {
			if k.Kind != "window" {
				continue
			}
			switch classify(usageKey{Process: k.Process, Host: k.Host}) {
			case Productive:
				t.ProductiveSeconds += v.Seconds
			case Unproductive:
				t.UnproductiveSeconds += v.Seconds
			default:
				t.NeutralSeconds += v.Seconds
			}
		}
	}
	if s.e.opts.UseRollups {
		if err := s.ts.SummarySettings(ctx); err != nil {
			return fmt.Errorf("report: summary settings: %w", err)
		}
	}
	emps := sc.employees
	for i := 0; i < len(emps); i += summaryChunk {
		chunk := emps[i:min(i+summaryChunk, len(emps))]
		acts, totals, err := s.activity(ctx, chunk, true)
		if err != nil {
			return err
		}
		for k, emp := range chunk {
			var t Totals
			if len(emp.Sids) > 0 {
				for i, d := range sc.days {
					m := measure(acts[k][i].Mask, d.minutes(), st.idleMinutes())
					t.OccupiedSeconds += 60 * int64(m.Occupied)
					t.ActiveSeconds += 60 * int64(m.Occupied+m.ShortPause)
					t.IdleSeconds += 60 * int64(m.Idle)
					if m.Occupied > 0 {
						t.DaysActive++
					}
					addUsage(&t, acts[k][i].Usage)
				}
				if totals != nil {
					addUsage(&t, totals[k])
				}
			}
			if err := fn(emp, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// unattributed lists the sids with activity in the period that no visible
// employee owns: from the rollups for closed days (when used), raw for the
// rest.
func (s *session) unattributed(ctx context.Context) (Unattributed, error) {
	days := s.sc.days
	first, last := days[0], days[len(days)-1]
	sids := map[string]bool{}
	rawFrom := first.Start
	if s.e.opts.UseRollups {
		closed := 0
		cut := s.e.opts.Now().Add(-s.e.opts.SafetyLag)
		for closed < len(days) && !days[closed].End.After(cut) {
			closed++
		}
		if closed > 0 {
			fromDay, _ := time.Parse(time.DateOnly, first.Date)
			toDay, _ := time.Parse(time.DateOnly, days[closed-1].Date)
			got, err := s.ts.RollupActivitySids(ctx, reportdb.RollupActivitySidsParams{FromDay: fromDay, ToDay: toDay})
			if err != nil {
				return Unattributed{}, fmt.Errorf("report: read rollup sids: %w", err)
			}
			for _, sid := range got {
				sids[sid] = true
			}
			// Dirty hours of closed days: read those days raw as well.
			rawFrom = days[closed-1].End
			dirty, err := s.ts.AnyDirty(ctx, reportdb.AnyDirtyParams{FromTime: first.Start.Add(-time.Hour), ToTime: rawFrom})
			if err != nil {
				return Unattributed{}, fmt.Errorf("report: read dirty hours: %w", err)
			}
			if dirty || s.split {
				rawFrom = first.Start
			}
		}
	}
	if rawFrom.Before(last.End) {
		for _, q := range s.queries() {
			w, err := q.RawWindowSids(ctx, reportdb.RawWindowSidsParams{FromTime: rawFrom, ToTime: last.End})
			if err != nil {
				return Unattributed{}, fmt.Errorf("report: read window sids: %w", err)
			}
			v, err := q.RawSiteSids(ctx, reportdb.RawSiteSidsParams{FromTime: rawFrom, ToTime: last.End})
			if err != nil {
				return Unattributed{}, fmt.Errorf("report: read site sids: %w", err)
			}
			for _, sid := range append(w, v...) {
				sids[sid] = true
			}
		}
	}
	out := Unattributed{Samples: []string{}}
	for sid := range sids {
		if _, owned := s.sc.sidOwner[sid]; !owned {
			out.Sids++
			out.Samples = append(out.Samples, sid)
		}
	}
	slices.Sort(out.Samples)
	if len(out.Samples) > maxUnattributedSamples {
		out.Samples = out.Samples[:maxUnattributedSamples]
	}
	return out, nil
}
