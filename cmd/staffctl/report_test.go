package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// staffctl report runs the Dashboard API's report engine for an
// organisation: on a generated one, every employee-day is there once, the
// summary ranks every employee, and the rollups (none built yet: every day
// dirty) change nothing.
func TestReportCommand(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL}
	run := mustStaffctl(t, env)
	run("generate", "--org-slug", "rpt", "--employees", "5", "--days", "3", "--end-date", "2026-11-25", "--seed", "7", "--time-zone", "Europe/Berlin")
	period := []string{"--org", "rpt", "--from", "2026-11-23", "--to", "2026-11-25"}

	out := run(append([]string{"report", "employee-days"}, period...)...)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("employee-days CSV: %v\n%s", err, out)
	}
	if len(recs) != 1+5*3 || recs[0][0] != "employee_id" {
		t.Fatalf("employee-days: %d records (want a header and 15), first %v", len(recs), recs[0])
	}
	seen := map[string]bool{}
	for _, r := range recs[1:] {
		k := r[0] + "/" + r[4]
		if seen[k] {
			t.Errorf("employee-day %s twice", k)
		}
		seen[k] = true
	}
	if raw := run(append([]string{"report", "employee-days", "--no-rollups"}, period...)...); raw != out {
		t.Errorf("--no-rollups answers differently:\n%s\nvs\n%s", raw, out)
	}

	var sum struct {
		TimeZone  string `json:"time_zone"`
		Employees []struct {
			Rank          int   `json:"rank"`
			ActiveSeconds int64 `json:"active_seconds"`
		} `json:"employees"`
	}
	out = run(append([]string{"report", "summary", "--format", "json"}, period...)...)
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary JSON: %v\n%s", err, out)
	}
	if sum.TimeZone != "Europe/Berlin" || len(sum.Employees) != 5 {
		t.Errorf("summary: zone %q, %d employees", sum.TimeZone, len(sum.Employees))
	}
	for i, e := range sum.Employees {
		if e.Rank != i+1 || (i > 0 && e.ActiveSeconds > sum.Employees[i-1].ActiveSeconds) {
			t.Errorf("summary rank %d: %+v", i, e)
		}
	}
	for _, kind := range []string{"attendance", "attendance-vs-activity", "unknown-badges"} {
		run(append([]string{"report", kind}, period...)...)
	}

	// Bad input: usage errors and refusals naming the flag's field.
	var u usageError
	if _, _, err := staffctl(t, env, "report", "summary", "--org", "rpt", "--from", "2026-11-23"); !errors.As(err, &u) {
		t.Errorf("no --to: %v, want a usage error", err)
	}
	if _, _, err := staffctl(t, env, "report", "summary", "--org", "rpt", "--from", "2026-11-23", "--to", "2026-11-01"); err == nil || !strings.Contains(err.Error(), "to") {
		t.Errorf("to before from: %v", err)
	}
	if _, _, err := staffctl(t, env, "report", "nonsense"); !errors.As(err, &u) {
		t.Errorf("unknown kind: %v, want a usage error", err)
	}
}
