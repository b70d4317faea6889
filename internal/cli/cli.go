// Package cli is what every binary's main shares: a context ended by
// SIGINT or SIGTERM, the binary's run function, and the exit status.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Run is a binary's whole program: its arguments (without the program
// name), the environment, and its output streams.
type Run func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Main runs run with a context that SIGINT and SIGTERM end, and exits: 0
// when run returns nil, otherwise after printing "name: err" to stderr with
// exitCode(err) (1 when exitCode is nil).
func Main(name string, run Run, exitCode func(error) int) {
	os.Exit(main(name, run, exitCode, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// main is Main without the process: it returns the exit status.
func main(name string, run Run, exitCode func(error) int, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, args, getenv, stdout, stderr)
	stop()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, name+":", err)
	if exitCode == nil {
		return 1
	}
	return exitCode(err)
}
