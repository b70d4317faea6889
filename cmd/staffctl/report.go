package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/report"
)

const reportUsage = `usage: staffctl report KIND --org ORG --from YYYY-MM-DD --to YYYY-MM-DD [flags]

KIND is one of
  employee-days           per employee and day: active/idle time, first/last activity, top apps and sites, productivity, sessions
  summary                 a department's subtree (--department) or the organisation, ranked
  attendance              first in, last out, time on site, late, early departure, absence
  attendance-vs-activity  badge-in without computer activity, activity without badge-in
  unknown-badges          door events of no known employee
  rollups                 bring the rollups up to date now (what the Agent API's maintainer does every ROLLUP_INTERVAL),
                          e.g. after staffctl generate; no --org, --from, --to

The same engine as the Dashboard API's /api/v2/reports/..., run for the organisation as the platform administrator.
`

// intList is a repeatable int64 flag.
type intList []int64

func (l *intList) String() string { return fmt.Sprint([]int64(*l)) }

func (l *intList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("%q is not a positive integer", s)
		}
		*l = append(*l, n)
	}
	return nil
}

func runReport(ctx context.Context, e env, args []string) error {
	kind, rest, err := subcommand(e, args, reportUsage, "employee-days", "summary", "attendance", "attendance-vs-activity", "unknown-badges", "rollups")
	if err != nil {
		return err
	}
	if kind == "rollups" {
		return runRollups(ctx, e, rest)
	}
	fs, dbURL := newFlags(e, "report "+kind, "report "+kind+" --org ORG --from DATE --to DATE [--employee ID]... [--department ID] [--format json|csv]")
	org := fs.String("org", "", "organisation id or slug (required)")
	from := fs.String("from", "", "first local day, YYYY-MM-DD (required)")
	to := fs.String("to", "", "last local day, inclusive, YYYY-MM-DD (required)")
	var employees intList
	fs.Var(&employees, "employee", "only this employee id (repeatable, or comma-separated)")
	department := fs.Int64("department", 0, "only this department's subtree")
	format := fs.String("format", "csv", "csv or json")
	tsURL := fs.String("timescale-url", "", "administrator's URL of a separate time-series database (default: $TIMESCALE_ADMIN_URL; empty: the series live in the main database)")
	noRollups := fs.Bool("no-rollups", false, "compute every day from the raw rows (the rollups are used for closed days otherwise)")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return usagef("report %s: --from and --to are required", kind)
	}
	if *format != "csv" && *format != "json" {
		return usagef("report %s: --format must be csv or json", kind)
	}
	pool, actor, err := orgScope(ctx, e, *dbURL, *org)
	if err != nil {
		return err
	}
	defer pool.Close()
	ts := pool
	if u := cmp.Or(*tsURL, e.getenv("TIMESCALE_ADMIN_URL")); u != "" {
		if ts, err = connectAdmin(ctx, u, 4); err != nil {
			return fmt.Errorf("--timescale-url: %w", err)
		}
		defer ts.Close()
	}
	eng := report.New(ts, pool, report.Options{UseRollups: !*noRollups})
	q := report.EmployeeDaysQuery{Period: report.Period{From: *from, To: *to}, EmployeeIDs: employees}
	if *department != 0 {
		q.DepartmentID = department
	}
	t := actor.Tenant
	switch kind {
	case "employee-days":
		return writeReport(e.stdout, *format, eng.EmployeeDays(ctx, t, q), report.WriteEmployeeDaysCSV)
	case "attendance":
		return writeReport(e.stdout, *format, eng.Attendance(ctx, t, q), report.WriteAttendanceCSV)
	case "attendance-vs-activity":
		return writeReport(e.stdout, *format, eng.Reconcile(ctx, t, q), report.WriteMismatchesCSV)
	case "summary":
		if len(employees) > 0 {
			return usagef("report summary: --employee does not apply (a summary covers --department or the organisation)")
		}
		s, err := eng.Summary(ctx, t, report.SummaryQuery{Period: q.Period, DepartmentID: q.DepartmentID})
		if err != nil {
			return err
		}
		if *format == "csv" {
			return report.WriteSummaryCSV(e.stdout, s)
		}
		return json.NewEncoder(e.stdout).Encode(s)
	default: // unknown-badges
		badges, err := eng.UnknownBadges(ctx, t, q.Period)
		if err != nil {
			return err
		}
		if *format == "csv" {
			return report.WriteBadgesCSV(e.stdout, badges)
		}
		return json.NewEncoder(e.stdout).Encode(badges)
	}
}

// writeReport writes a per-employee report as CSV or as JSON lines (one
// row per line), streamed.
func writeReport[T any](w io.Writer, format string, rows iter.Seq2[T, error], writeCSV func(io.Writer, iter.Seq2[T, error]) error) error {
	if format == "csv" {
		return writeCSV(w, rows)
	}
	enc := json.NewEncoder(w)
	for v, err := range rows {
		if err != nil {
			return err
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}

// runRollups runs the rollup maintainer until no claimable dirty hour is
// left, as the ingest role (the maintainer's role in the Agent API),
// printing its progress.
func runRollups(ctx context.Context, e env, args []string) error {
	fs, dbURL := newFlags(e, "report rollups", "report rollups [--database-url URL] [--timescale-url URL]")
	tsURL := fs.String("timescale-url", "", "administrator's URL of a separate time-series database (default: $TIMESCALE_ADMIN_URL)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dsn, err := databaseURL(e, *dbURL)
	if err != nil {
		return err
	}
	main, err := connectIngest(ctx, dsn)
	if err != nil {
		return err
	}
	defer main.Close()
	ts := main
	if u := cmp.Or(*tsURL, e.getenv("TIMESCALE_ADMIN_URL")); u != "" {
		if ts, err = connectIngest(ctx, u); err != nil {
			return fmt.Errorf("--timescale-url: %w", err)
		}
		defer ts.Close()
	}
	ms := []*report.Maintainer{report.NewMaintainer(ts, main, report.MaintainerConfig{})}
	if ts != main {
		ms = append(ms, report.NewMaintainer(main, nil, report.MaintainerConfig{}))
	}
	start := time.Now()
	var total report.Result
	for _, m := range ms {
		for {
			res, err := m.RunOnce(ctx)
			if err != nil {
				return err
			}
			total.Sids += res.Sids
			total.Hours += res.Hours
			total.Days += res.Days
			fmt.Fprintf(e.stdout, "rollups: %d SIDs, %d dirty hours, %d local days recomputed (%s)\n",
				total.Sids, total.Hours, total.Days, time.Since(start).Round(time.Second))
			if res.Sids == 0 {
				break
			}
		}
	}
	return nil
}
