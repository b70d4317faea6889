package main

import (
	"context"
	"errors"
)

// runBenchE2E is being built (issue 17, part 1).
func runBenchE2E(ctx context.Context, e env, args []string) error {
	return errors.New("bench e2e: not built yet")
}
