package dataset

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/dataset/datasetdb"
)

// benchSize is the benchmarks' dataset: DATASET_BENCH_EMPLOYEES employees
// (default 50) × DATASET_BENCH_DAYS days (default 3), ending on a Wednesday.
func benchSize(b *testing.B) Config {
	get := func(name string, def int) int {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				b.Fatalf("%s=%q: want a positive number", name, v)
			}
			return n
		}
		return def
	}
	return Config{Employees: get("DATASET_BENCH_EMPLOYEES", 50), Days: get("DATASET_BENCH_DAYS", 3), EndDate: "2026-11-25",
		Password: "correct horse battery", Writers: runtime.GOMAXPROCS(0)}
}

// BenchmarkGenerate: the whole generator into a fresh database per
// iteration; rows/s is the series' rate (drawing and COPY), setup_s the
// relational part's time.
func BenchmarkGenerate(b *testing.B) {
	var rows int64
	var series, setup time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db := newTestDB(b, int32(runtime.GOMAXPROCS(0)))
		cfg := benchSize(b)
		cfg.OrgSlug, cfg.Seed = fmt.Sprintf("bench-%d", i), uint64(i)
		b.StartTimer()
		res, err := Generate(context.Background(), db.deps, cfg)
		if err != nil {
			b.Fatal(err)
		}
		rows += res.Total()
		series += res.Series
		setup += res.Setup
	}
	b.ReportMetric(float64(rows)/series.Seconds(), "rows/s")
	b.ReportMetric(setup.Seconds()/float64(b.N), "setup_s")
	b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
}

// BenchmarkCopyFromBaseline: raw CopyFrom of the same rows, built in
// memory beforehand, into the same tables of a fresh database, one COPY
// per series and day with the same number of writers: the generator's
// ceiling. rows/s over the COPYs alone.
func BenchmarkCopyFromBaseline(b *testing.B) {
	var rows int64
	var took time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db := newTestDB(b, int32(runtime.GOMAXPROCS(0)))
		cfg := benchSize(b)
		cfg.OrgSlug = "baseline"
		loc, end, err := cfg.normalize(time.Now())
		if err != nil {
			b.Fatal(err)
		}
		g := &generator{seed: uint64(i), loc: loc, org: 1, gateway: uuid.New()}
		for d := cfg.Days - 1; d >= 0; d-- {
			g.days = append(g.days, time.Date(end.Year(), end.Month(), end.Day()-d, 0, 0, 0, 0, loc))
		}
		g.catalogue()
		g.people(cfg.Employees)
		built := map[job][][]any{}
		jobs := g.jobs()
		for _, j := range jobs {
			m := emitter{g: g, series: j.series, hours: func(string, time.Time, time.Time) {}}
			var all [][]any
			for e := 0; e <= len(g.emps); e++ {
				var emp *employee
				if e < len(g.emps) {
					emp = &g.emps[e]
				}
				m.employeeDay(emp, j.day)
				for _, r := range m.rows[:m.n] {
					all = append(all, slices.Clone(r))
				}
			}
			built[j] = all
		}
		q := datasetdb.New(db.deps.Owner)
		if _, err := q.EnsurePartitions(context.Background(), datasetdb.EnsurePartitionsParams{FromDay: g.days[0].UTC(),
			ToDay: g.days[len(g.days)-1].AddDate(0, 0, 2).UTC()}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := runJobs(context.Background(), db.deps.Owner, cfg.Writers, jobs, func(j job) pgx.CopyFromSource { return pgx.CopyFromRows(built[j]) })
		took += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range res.rows {
			rows += n
		}
	}
	b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
	b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
}

// BenchmarkDraw: drawing alone, no database — every series of 50
// employee-days per op, the values as the COPY receives them; rows/s is
// what one core draws.
func BenchmarkDraw(b *testing.B) {
	cfg := benchSize(b)
	cfg.OrgSlug = "draw"
	loc, end, err := cfg.normalize(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	g := &generator{seed: 1, loc: loc, org: 1, gateway: uuid.New(), days: []time.Time{end}}
	g.catalogue()
	g.people(50)
	var rows int64
	ms := make([]emitter, seriesCount)
	for s := range ms {
		ms[s] = emitter{g: g, series: s, hours: func(string, time.Time, time.Time) {}}
	}
	for b.Loop() {
		for e := range g.emps {
			for s := range ms {
				ms[s].employeeDay(&g.emps[e], 0)
				rows += int64(ms[s].n)
			}
		}
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
