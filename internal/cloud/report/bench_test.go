package report_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/report"
)

// benchEmployees is the benchmark organisation's size:
// REPORT_BENCH_EMPLOYEES (default 20), over 30 days.
func benchEmployees() int {
	if n, err := strconv.Atoi(os.Getenv("REPORT_BENCH_EMPLOYEES")); err == nil && n > 0 {
		return n
	}
	return 20
}

// benchOrg is a generated organisation: employees in 4 departments, each
// with one sid and ~40 windows and ~10 sites a working day for 30 days
// ending 4 days ago, inserted through the insert functions.
type benchOrg struct {
	ds       *dataset
	period   report.Period
	employee int64
	dept     int64
}

func newBenchOrg(b *testing.B) *benchOrg {
	b.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(b)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { admin.Close(context.Background()) })
	a, err := pgtest.SeedOrganization(ctx, admin, "bench")
	if err != nil {
		b.Fatal(err)
	}
	ds := &dataset{db: db, a: a, admin: admin, ingest: pg.Pool(b, db.IngestURL, 4), dashboard: pg.Pool(b, db.DashboardURL, 4)}
	exec := func(sql string, args ...any) {
		if _, err := admin.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`UPDATE monitoring.retention SET days = 3650`)
	exec(`UPDATE organizations SET time_zone = 'Europe/Berlin' WHERE id = $1`, a.OrganizationID)
	loc, _ := time.LoadLocation("Europe/Berlin")
	today := time.Now().In(loc)
	first := time.Date(today.Year(), today.Month(), today.Day()-33, 0, 0, 0, 0, loc)
	last := time.Date(today.Year(), today.Month(), today.Day()-4, 0, 0, 0, 0, loc)
	exec(`SELECT monitoring.ensure_day_partitions(s, ARRAY['active_windows', 'visited_sites', 'user_sessions', 'device_events'],
		ARRAY(SELECT generate_series($1::date - 8, $2::date + 1, '1 day')::date)) FROM unnest(ARRAY['monitoring', 'monitoring_fallback']) s`,
		first.Format(time.DateOnly), last.Format(time.DateOnly))
	bo := &benchOrg{ds: ds, period: report.Period{From: first.Format(time.DateOnly), To: last.Format(time.DateOnly)}}
	var depts []int64
	for i := range 4 {
		var id int64
		if err := admin.QueryRow(ctx, `INSERT INTO departments (organization_id, name) VALUES ($1, $2) RETURNING id`, a.OrganizationID, fmt.Sprint("D", i)).Scan(&id); err != nil {
			b.Fatal(err)
		}
		depts = append(depts, id)
	}
	bo.dept = depts[0]
	r := lcg(7)
	procs := []string{"code.exe", "chrome.exe", "slack.exe", "excel.exe"}
	n := benchEmployees()
	var batch []row
	flush := func() {
		err := postgres.InTenant(ctx, ds.ingest, postgres.Tenant{OrganizationID: a.OrganizationID}, func(tx pgx.Tx) error {
			return insertRows(ctx, tx, "monitoring", "", a.OrganizationID, a.GatewayID, batch)
		})
		if err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for e := range n {
		var id int64
		if err := admin.QueryRow(ctx, `INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name)
			VALUES ($1, $2, $3, 'B', $3) RETURNING id`, a.OrganizationID, depts[e%4], fmt.Sprint("B", e)).Scan(&id); err != nil {
			b.Fatal(err)
		}
		if e == 0 {
			bo.employee = id
		}
		sid := fmt.Sprint("S-B-", e)
		exec(`INSERT INTO employee_identities (organization_id, employee_id, kind, value) VALUES ($1, $2, 'windows_sid', $3)`, a.OrganizationID, id, sid)
		for d := first; !d.After(last); d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc) {
			if d.Weekday() == time.Saturday || d.Weekday() == time.Sunday {
				continue
			}
			at := d.Add(8 * time.Hour)
			for k := 0; k < 40; k++ {
				dur := 60 + r.intn(900)
				batch = append(batch, row{id: uuid.Must(uuid.NewV7()), kind: "window", sid: sid, process: procs[r.intn(len(procs))],
					url: "https://github.com/x", at: at, dur: dur, schema: "monitoring"})
				if k%4 == 0 {
					batch = append(batch, row{id: uuid.Must(uuid.NewV7()), kind: "site", sid: sid, url: "https://example.com/y", at: at, dur: dur / 2, schema: "monitoring"})
				}
				at = at.Add(time.Duration(dur+r.intn(300)) * time.Second)
			}
		}
		if len(batch) > 5000 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	if _, err := report.NewMaintainer(ds.ingest, nil, report.MaintainerConfig{SidsPerClaim: 50}).RunOnce(ctx); err != nil {
		b.Fatal(err)
	}
	exec(`ANALYZE`)
	return bo
}

// BenchmarkReports: a per-employee daily report (one employee, one day),
// a department's summary and the organisation's over 30 days, read raw
// and from the rollups. REPORT_BENCH_EMPLOYEES sets the size.
func BenchmarkReports(b *testing.B) {
	bo := newBenchOrg(b)
	ctx := context.Background()
	tenant := hr(bo.ds.a.OrganizationID)
	for _, mode := range []struct {
		name    string
		rollups bool
	}{{"raw", false}, {"rollups", true}} {
		e := report.New(bo.ds.dashboard, nil, report.Options{UseRollups: mode.rollups})
		b.Run("employee-day/"+mode.name, func(b *testing.B) {
			q := report.EmployeeDaysQuery{Period: report.Period{From: bo.period.To, To: bo.period.To}, EmployeeIDs: []int64{bo.employee}}
			for b.Loop() {
				for _, err := range e.EmployeeDays(ctx, tenant, q) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run("employee-30d/"+mode.name, func(b *testing.B) {
			q := report.EmployeeDaysQuery{Period: bo.period, EmployeeIDs: []int64{bo.employee}}
			for b.Loop() {
				for _, err := range e.EmployeeDays(ctx, tenant, q) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run("department-30d/"+mode.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := e.Summary(ctx, tenant, report.SummaryQuery{Period: bo.period, DepartmentID: &bo.dept}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("organisation-30d/"+mode.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := e.Summary(ctx, tenant, report.SummaryQuery{Period: bo.period}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
