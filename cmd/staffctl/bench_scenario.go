package main

import (
	"context"
	"errors"
)

// runBenchScenario is being built (issue 17, part 2).
func runBenchScenario(ctx context.Context, e env, args []string) error {
	return errors.New("bench scenario: not built yet")
}
