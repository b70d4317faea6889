package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/staffcontrol/staffcontrol/internal/buildinfo"
)

// env carries what every subcommand may use: the process environment and
// its output streams. It is built once in run and passed explicitly.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// command is one staffctl subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

// commands is the routes table of staffctl: every subcommand, in one place.
func commands() []command {
	return []command{
		{name: "migrate", summary: "apply or roll back database migrations (up, down, status)", run: runMigrate},
		{name: "tenant-key", summary: "generate, install or retire the key that signs tenant contexts", run: runTenantKey},
		{name: "token-key", summary: "generate a signing key for the Dashboard API's access tokens", run: runTokenKey},
		{name: "org", summary: "manage organisations (create, list, enrolment-secret)", run: runOrg},
		{name: "agent", summary: "manage desktop agents (revoke)", run: runAgent},
		{name: "user", summary: "manage dashboard users (create)", run: runUser},
		{name: "gateway", summary: "register gateways, issue provisioning tokens, rotate API keys (register, rotate-key)", run: runGateway},
		{name: "policy", summary: "manage policies (create, update, release, rollback, compare, distribute, status)", run: runPolicy},
		{name: "retention", summary: "run time-series retention, list its runs, set policies (run, runs, policy)", run: runRetention},
		{name: "command", summary: "send and list gateway commands (send, list)", run: runCommand},
		{name: "device", summary: "send device commands, resend a gateway's device list (open-door, close-door, reboot, info, sync, …)", run: runDevice},
		{name: "report", summary: "reports: employee-days, summary, attendance, attendance-vs-activity, unknown-badges (CSV or JSON)", run: runReport},
		{name: "up", summary: "run the whole system on this machine (PostgreSQL, Agent API, Dashboard API)", run: runUp},
		{name: "generate", summary: "generate a realistic organisation and its monitoring data (benchmarks, demos)", run: runGenerate},
		{name: "bench", summary: "whole-pipeline benchmarks: e2e (agents → gateway → Agent API → PostgreSQL vs raw COPY), scenario NAME (the seed's load tests)", run: runBench},
		{name: "release", summary: "reproducible signed release builds: build, keygen, verify", run: runRelease},
		{name: "simulate", summary: "load simulators (agents, gateways, zkteco, hikvision)", run: runSimulate},
	}
}

// usageError marks an error caused by bad command-line input (exit code 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{msg: fmt.Sprintf(format, a...)} }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout, cmds)
		if len(args) == 0 {
			return usagef("a command is required")
		}
		return nil
	}
	if args[0] == "--version" || args[0] == "-version" {
		fmt.Fprintln(stdout, buildinfo.Line("staffctl"))
		return nil
	}
	for _, c := range cmds {
		if c.name == args[0] {
			ctx, end, err := traceCommand(ctx, getenv, c.name)
			if err != nil {
				return err
			}
			err = c.run(ctx, e, args[1:])
			end()
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
	}
	printUsage(stderr, cmds)
	return usagef("unknown command %q", args[0])
}

func printUsage(w io.Writer, cmds []command) {
	var b strings.Builder
	b.WriteString("usage: staffctl <command> [arguments]\n\ncommands:\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'staffctl <command> --help' for a command's flags.\n")
	fmt.Fprint(w, b.String())
}
