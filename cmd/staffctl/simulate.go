package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
)

// runSimulate runs load simulators: "simulate agents" drives desktop agents
// against a gateway and writes the acknowledged event ids to a file;
// "simulate gateways" holds gateways' control sockets to an Agent API.
func runSimulate(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "gateways" {
		return runSimulateGateways(ctx, e, args[1:])
	}
	if len(args) > 0 && args[0] == "zkteco" {
		return runSimulateZKTeco(ctx, e, args[1:])
	}
	if len(args) > 0 && args[0] == "hikvision" {
		return runSimulateHikvision(ctx, e, args[1:])
	}
	if len(args) == 0 || args[0] != "agents" {
		return usagef("usage: staffctl simulate agents --count N --rate R --gateway URL [flags]\n       staffctl simulate gateways --count N --server URL --keys FILE [flags]\n       staffctl simulate zkteco --listen 127.0.0.1:4370 --users N --comm-key K --badge-rate R [flags]\n       staffctl simulate hikvision --listen 127.0.0.1:8080 --user admin --password P [--badge-rate R] [flags]")
	}
	fs := flag.NewFlagSet("simulate agents", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	count := fs.Int("count", 10, "number of simulated agents")
	rate := fs.Float64("rate", 10, "events per second per agent (0: as fast as acknowledgements come)")
	gateway := fs.String("gateway", "http://127.0.0.1:3000", "gateway HTTP base URL")
	grpcAddr := fs.String("grpc", "", "gateway gRPC address host:port (with --transport grpc)")
	transport := fs.String("transport", "http", "http or grpc")
	batch := fs.Int("batch", 100, "events per request")
	shotEvery := fs.Int("screenshot-every", 0, "upload a screenshot after every Nth batch (0: none; HTTP only)")
	shotBytes := fs.Int("screenshot-bytes", 64<<10, "size of a simulated screenshot")
	duration := fs.Duration("duration", 30*time.Second, "how long to run (0: until interrupted)")
	maxEvents := fs.Int64("events", 0, "stop after this many events (0: no limit)")
	acks := fs.String("acks", "", "write every acknowledged event id to this file, one per line")
	ctl := fs.Bool("control", false, "agents also fetch the policy, report its version and carry out restart commands")
	policyEvery := fs.Duration("policy-interval", 30*time.Second, "with --control: how often each agent fetches the policy")
	secret := fs.String("enrolment-secret", "", "the organisation's agent enrolment secret (default $STAFF_ENROLMENT_SECRET)")
	newSecretOrg := fs.String("new-enrolment-secret-for", "", "organisation (id or slug) whose enrolment secret is ROTATED for this run (needs --database-url or $DATABASE_URL)")
	dbURL := fs.String("database-url", "", "administrator's PostgreSQL URL, with --new-enrolment-secret-for (default: $DATABASE_URL)")
	caFile := fs.String("ca-file", "", "PEM CA bundle to verify a gateway served over TLS (https:// --gateway)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *count < 1 {
		return usagef("--count must be at least 1")
	}
	if *rate < 0 {
		return usagef("--rate must not be negative")
	}
	if *secret == "" {
		*secret = e.getenv("STAFF_ENROLMENT_SECRET")
	}
	if *newSecretOrg != "" {
		s, err := rotateEnrolmentSecret(ctx, e, *dbURL, *newSecretOrg)
		if err != nil {
			return err
		}
		*secret = s
		fmt.Fprintf(e.stderr, "new agent enrolment secret of organisation %s: %s\n", *newSecretOrg, s)
	}
	if *secret == "" {
		return usagef("simulate agents: agents enrol first: pass --enrolment-secret (or $STAFF_ENROLMENT_SECRET), or --new-enrolment-secret-for ORG")
	}
	opts := agentsim.Options{GatewayURL: *gateway, EnrolmentSecret: *secret, CAFile: *caFile, GRPCAddr: *grpcAddr, Transport: *transport, Agents: *count, Rate: *rate,
		BatchSize: *batch, ScreenshotEvery: *shotEvery, ScreenshotBytes: *shotBytes, Duration: *duration, MaxEvents: *maxEvents,
		Control: *ctl, PolicyInterval: *policyEvery}
	var flush func() error
	if *acks != "" {
		f, err := os.Create(*acks)
		if err != nil {
			return fmt.Errorf("simulate: --acks: %w", err)
		}
		defer f.Close()
		w := bufio.NewWriter(f)
		var mu sync.Mutex
		opts.Observe = func(ids []string, o agentsim.Outcome) {
			if o != agentsim.Acked {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				w.WriteString(id)
				w.WriteByte('\n')
			}
		}
		flush = func() error { mu.Lock(); defer mu.Unlock(); return w.Flush() }
	}
	res, err := agentsim.Run(ctx, opts)
	if err != nil {
		return err
	}
	if flush != nil {
		if err := flush(); err != nil {
			return fmt.Errorf("simulate: write acks: %w", err)
		}
	}
	fmt.Fprintln(e.stdout, res.String())
	fmt.Fprintf(e.stdout, "enrolled=%d of %d agents\n", res.Enrolled, *count)
	if res.Enrolled < int64(*count) {
		return fmt.Errorf("simulate: %d of %d agents could not enrol (wrong --enrolment-secret, or the gateway has no enrolment verifier yet)", int64(*count)-res.Enrolled, *count)
	}
	if *ctl {
		c := res.Control
		fmt.Fprintf(e.stdout, "control: policy_fetches=%d not_modified=%d applied=%d restarts=%d hot_reloads=%d commands_acked=%d\n",
			c.PolicyFetches, c.NotModified, c.PoliciesApplied, c.Restarts, c.HotReloads, c.CommandsAcked)
	}
	return nil
}
