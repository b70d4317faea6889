// Command staffctl is the Staff Control administration tool: database
// migrations, organisations, users, gateway registration, the one-machine
// demo stack and load simulators.
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
		fmt.Fprintln(os.Stderr, "staffctl:", err)
		os.Exit(exitCode(err))
	}
}
