// Command agent-api runs the Agent API (:3001): batch ingest from gateways,
// the control channel and policy distribution. Configuration comes from the
// environment; see docs/operations.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent-api:", err)
		os.Exit(1)
	}
}
