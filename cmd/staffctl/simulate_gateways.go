package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/logging"
	"github.com/staffcontrol/staffcontrol/internal/sim/fleetsim"
)

// runSimulateGateways runs "simulate gateways": a fleet of simulated
// gateways holding control sockets to an Agent API (internal/sim/fleetsim).
// It prints the fleet's counters as JSON when it stops.
func runSimulateGateways(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("simulate gateways", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	count := fs.Int("count", 0, "number of simulated gateways: the first N of --keys (0: all)")
	server := fs.String("server", "http://127.0.0.1:3001", "Agent API base URL")
	keys := fs.String("keys", "", `file of "gateway-id api-key" lines (required)`)
	ready := fs.String("ready-file", "", "write the counters as JSON to this file once every gateway has been welcomed")
	duration := fs.Duration("duration", 10*time.Minute, "how long to run (0: until interrupted)")
	stdin := fs.Bool("stdin", false, "also stop when standard input reaches EOF (for a parent process holding the pipe)")
	dials := fs.Int("dial-concurrency", 32, "connection attempts in flight at most")
	fetches := fs.Int("fetch-connections", 64, "HTTP connections for policy fetches at most")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keys == "" {
		return usagef("--keys is required")
	}
	if *count < 0 || *duration < 0 {
		return usagef("--count and --duration must not be negative")
	}
	kf, err := os.Open(*keys)
	if err != nil {
		return fmt.Errorf("simulate gateways: --keys: %w", err)
	}
	gws, err := fleetsim.ReadGateways(kf)
	kf.Close()
	if err != nil {
		return err
	}
	if *count > len(gws) {
		return usagef("--count %d: %s holds %d gateways", *count, *keys, len(gws))
	}
	if *count > 0 {
		gws = gws[:*count]
	}
	if len(gws) == 0 {
		return usagef("%s holds no gateway", *keys)
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *stdin {
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	}
	logger := logging.New(e.stderr, logging.Options{Service: "staffctl"})
	var f *fleetsim.Fleet
	f, err = fleetsim.New(fleetsim.Options{BaseURL: *server, Gateways: gws, DialConcurrency: *dials, FetchConnections: *fetches, Logger: logger,
		OnReady: func() {
			if *ready == "" {
				return
			}
			if err := writeJSONFile(*ready, f.Stats()); err != nil {
				logger.Error("simulate gateways: --ready-file", "err", err)
				cancel()
			}
		}})
	if err != nil {
		return usagef("--server: %v", err)
	}
	progress := lifecycle.NewLoop("progress", logger, func(ctx context.Context) error {
		return lifecycle.Every(ctx, progressInterval, false, func(context.Context) {
			s := f.Stats()
			logger.Info("simulate gateways", "connected", s.Connected, "welcomed", s.Welcomed, "of", s.Gateways, "applied", s.Applied, "failed", s.Failed)
		})
	})
	if err := progress.Start(ctx); err != nil {
		return err
	}
	f.Run(ctx)
	_ = progress.Stop(context.WithoutCancel(ctx)) // returns at once: the loop only waits on its ticker
	out, _ := json.Marshal(f.Stats())
	fmt.Fprintln(e.stdout, string(out))
	return nil
}

// progressInterval is how often "simulate gateways" logs the fleet's
// counters.
const progressInterval = 10 * time.Second

// writeJSONFile writes v to path atomically (a temporary file renamed).
func writeJSONFile(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ready-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
