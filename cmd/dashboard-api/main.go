// Command dashboard-api runs the Dashboard API (:3000): organisations, employees,
// gateways, devices, policies and reports. Configuration comes from the
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
		fmt.Fprintln(os.Stderr, "dashboard-api:", err)
		os.Exit(1)
	}
}
