package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/staffcontrol/staffcontrol/internal/bench/scenario"
	"github.com/staffcontrol/staffcontrol/internal/logging"
)

// errThresholds is the exit error of a run whose thresholds failed.
var errThresholds = errors.New("bench scenario: thresholds failed")

// runBenchScenario runs "bench scenario NAME": one of the seed's load
// scenarios against the cloud side on this machine (internal/bench/scenario),
// a line per second while it runs, then the thresholds' table; the result
// as JSON and an HTML page of charts in --out. A failed threshold makes
// the exit status non-zero.
func runBenchScenario(ctx context.Context, e env, args []string) error {
	usage := "usage: staffctl bench scenario NAME [--scale F] [--database-url URL] [--out DIR] [--replicas N]\n       NAME is one of " + strings.Join(scenario.Names(), ", ")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(e.stdout, usage)
			return nil
		}
		return usagef("%s", usage)
	}
	sc, err := scenario.Lookup(args[0])
	if err != nil {
		return usagef("bench scenario: unknown scenario %q: one of %s", args[0], strings.Join(scenario.Names(), ", "))
	}
	fs := flag.NewFlagSet("bench scenario", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	scale := fs.Float64("scale", 1, "multiply every stage's duration by F (e.g. 0.05 for a short run)")
	dbURL := fs.String("database-url", "", "an administrator's (superuser's) URL of an existing database to migrate and use (default: a throwaway PostgreSQL cluster)")
	out := fs.String("out", "bench-results", "directory for the JSON result and the HTML charts")
	replicas := fs.Int("replicas", 2, "Agent API replicas behind the balancer")
	verbose := fs.Bool("verbose", false, "log the services' warnings to stderr")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("bench scenario: %v", err)
	}
	if fs.NArg() > 0 {
		return usagef("bench scenario: unexpected argument %q after the flags", fs.Arg(0))
	}
	if !(*scale > 0) || math.IsInf(*scale, 0) || *scale > 10 {
		return usagef("--scale must be a number in (0, 10], not %g", *scale)
	}
	if *replicas < 1 || *replicas > 16 {
		return usagef("--replicas must be between 1 and 16, not %d", *replicas)
	}
	if *out == "" {
		return usagef("--out must name a directory")
	}
	var logger *slog.Logger
	if *verbose {
		logger = logging.New(e.stderr, logging.Options{Level: slog.LevelWarn, Service: "staffctl"})
	}
	scaled := sc.Scaled(*scale)
	fmt.Fprintf(e.stdout, "scenario %s (%s), scale %g: %s\n", sc.Name, sc.Executor, *scale, scaled.Duration())
	fmt.Fprintf(e.stdout, "%5s %5s %7s %6s %7s %8s %8s %8s %9s %7s %7s\n", "t", "vus", "req/s", "fail", "drop", "p50 ms", "p95 ms", "p99 ms", "write p95", "queue", "buffer")
	res, err := scenario.Run(ctx, scenario.Options{Scenario: scaled, Scale: *scale, DatabaseURL: *dbURL, Replicas: *replicas, Logger: logger,
		Progress: func(s scenario.Second) { printSecond(e.stdout, s) }})
	if res == nil {
		return fmt.Errorf("bench scenario %s: %w", sc.Name, err)
	}
	jp, hp, werr := res.Write(*out)
	if werr != nil {
		return errors.Join(err, werr)
	}
	printThresholds(e.stdout, res)
	fmt.Fprintf(e.stdout, "result: %s\ncharts: %s\n", jp, hp)
	if err != nil {
		return err
	}
	if !res.Pass {
		return errThresholds
	}
	return nil
}

func opt(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *p)
}

// printSecond is the live line of one second.
func printSecond(w io.Writer, s scenario.Second) {
	fmt.Fprintf(w, "%5d %5d %7d %6d %7d %8s %8s %8s %9s %7d %7.3f\n", s.T, s.VUs, s.Requests, s.Failures, s.Dropped,
		opt(s.P50), opt(s.P95), opt(s.P99), opt(s.WriteP95), s.QueueDepth, s.BufferUsage)
}

// printThresholds is the final table: totals, then each threshold's value,
// limit and verdict.
func printThresholds(w io.Writer, r *scenario.Result) {
	t := r.Totals
	fmt.Fprintf(w, "\n%d requests (%.1f/s), %d failed, %d dropped and %d interrupted iterations, %d events (%.0f/s), %d batch writes; latency p50 %.1f ms p95 %.1f ms p99 %.1f ms; load average %s → %s\n\n",
		t.Requests, t.RPS, t.Failures, t.Dropped, t.Interrupted, t.Events, t.EPS, t.Writes, t.P50, t.P95, t.P99, r.LoadBefore, r.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "threshold\tvalue\tlimit\tsamples\tresult")
	for _, th := range r.Thresholds {
		verdict := "pass"
		if !th.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "%s %s\t%s %s\t%g\t%d\t%s\n", th.Name, th.Expr, num(th.Value), th.Unit, th.Limit, th.Samples, verdict)
	}
	_ = tw.Flush()
	if r.Pass {
		fmt.Fprintln(w, "\nall thresholds pass")
	} else {
		fmt.Fprintln(w, "\nthresholds FAILED")
	}
}

func num(v float64) string {
	if v != 0 && math.Abs(v) < 1 {
		return fmt.Sprintf("%.4f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
