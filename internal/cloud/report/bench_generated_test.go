package report_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/report"
)

// BenchmarkGeneratedOrg measures the issue-15 reports on an organisation
// made by staffctl generate (docs/benchmarks.md, "Reports"): the
// per-employee daily report, a department's summary and the
// organisation's summary over the generated 30 days, with the rollups and
// from the raw rows, reporting p50 and p99 per operation besides ns/op.
// It runs only when REPORT_BENCH_URL names the generated database (an
// administrator's URL; the benchmark reads as the dashboard role, as HR
// of the organisation REPORT_BENCH_ORG, default "big").
func BenchmarkGeneratedOrg(b *testing.B) {
	url := os.Getenv("REPORT_BENCH_URL")
	if url == "" {
		b.Skip("REPORT_BENCH_URL is not set (a database filled by staffctl generate)")
	}
	ctx := context.Background()
	key, err := postgres.CurrentContextKey(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	dashURL, err := postgres.WithUser(url, postgres.RoleDashboard, "")
	if err != nil {
		b.Fatal(err)
	}
	pool, err := postgres.Connect(ctx, dashURL, 4, key)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	admin, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	slug := os.Getenv("REPORT_BENCH_ORG")
	if slug == "" {
		slug = "big"
	}
	var org, dept, emp int64
	var first, last time.Time
	if err := admin.QueryRow(ctx, `SELECT o.id,
			(SELECT d.id FROM departments d WHERE d.organization_id = o.id AND d.parent_id IS NOT NULL ORDER BY d.id LIMIT 1),
			(SELECT e.id FROM employees e WHERE e.organization_id = o.id ORDER BY e.id LIMIT 1 OFFSET 10)
		FROM organizations o WHERE o.slug = $1`, slug).Scan(&org, &dept, &emp); err != nil {
		b.Fatalf("organisation %q: %v", slug, err)
	}
	if err := admin.QueryRow(ctx, `SELECT min(day), max(day) FROM monitoring.activity_days WHERE organization_id = $1`, org).Scan(&first, &last); err != nil {
		b.Fatalf("rollups of %q (run staffctl report rollups first): %v", slug, err)
	}
	// The last 30 closed days: the newest rollup day may be today's
	// (a session or window past the generated end), read raw.
	end := last.AddDate(0, 0, -1)
	if end.Before(first.AddDate(0, 0, 29)) {
		b.Fatalf("rollups of %q cover %s to %s: fewer than 30 closed days", slug, first.Format(time.DateOnly), last.Format(time.DateOnly))
	}
	period := report.Period{From: end.AddDate(0, 0, -29).Format(time.DateOnly), To: end.Format(time.DateOnly)}
	oneDay := report.Period{From: end.AddDate(0, 0, -1).Format(time.DateOnly), To: end.AddDate(0, 0, -1).Format(time.DateOnly)}
	hr := postgres.Tenant{OrganizationID: org, Role: postgres.AppHR, Actor: "bench"}
	for _, mode := range []struct {
		name    string
		rollups bool
	}{{"rollups", true}, {"raw", false}} {
		eng := report.New(pool, pool, report.Options{UseRollups: mode.rollups})
		for _, op := range []struct {
			name string
			run  func() error
		}{
			{"employee-day", func() error {
				for _, err := range eng.EmployeeDays(ctx, hr, report.EmployeeDaysQuery{Period: oneDay, EmployeeIDs: []int64{emp}}) {
					if err != nil {
						return err
					}
				}
				return nil
			}},
			{"department-30d", func() error {
				_, err := eng.Summary(ctx, hr, report.SummaryQuery{Period: period, DepartmentID: &dept})
				return err
			}},
			{"organization-30d", func() error {
				_, err := eng.Summary(ctx, hr, report.SummaryQuery{Period: period})
				return err
			}},
		} {
			b.Run(op.name+"/"+mode.name, func(b *testing.B) {
				var took []time.Duration
				for b.Loop() {
					start := time.Now()
					if err := op.run(); err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(start))
				}
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
				b.ReportMetric(float64(took[min(len(took)-1, len(took)*99/100)].Milliseconds()), "p99-ms")
			})
		}
	}
}
