package main

import (
	"context"
)

// runBench runs the whole-pipeline benchmarks (issue 17): "bench e2e"
// drives agents through a real gateway and two Agent API replicas into
// PostgreSQL beside raw COPY; "bench scenario NAME" runs one of the seed's
// load scenarios and checks its thresholds.
func runBench(ctx context.Context, e env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "e2e":
			return runBenchE2E(ctx, e, args[1:])
		case "scenario":
			return runBenchScenario(ctx, e, args[1:])
		}
	}
	return usagef("usage: staffctl bench e2e [flags]\n       staffctl bench scenario NAME [--scale F] [flags]")
}
