package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/buildinfo"
	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/vendors"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/logging"
	"github.com/staffcontrol/staffcontrol/internal/logscrub"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// gcPercent is the gateway's GOGC unless the environment sets one.
const gcPercent = 400

// defaultConfigPath is where the install script writes gateway.yml.
const defaultConfigPath = "/etc/staff-gateway/gateway.yml"

// usageError marks bad command-line input (exit code 2).
type usageError struct{ msg string }

// Error implements error.
func (u usageError) Error() string { return u.msg }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

func version() string { return buildinfo.Read().Version }

// run is the whole program: flags, configuration, logging, then either the
// connection test or the gateway until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file (default "+defaultConfigPath+" when it exists; STAFF_GATEWAY_CONFIG also works)")
	testConn := fs.Bool("test-connection", false, "check the connection to the cloud, print a verdict and exit")
	provision := fs.Bool("provision", false, "exchange organization.provisioning_token for an API key now (the key file beside the buffer), print the gateway id and exit; a no-op when already provisioned")
	showVersion := fs.Bool("version", false, "print the version and exit")
	showKeys := fs.Bool("print-config-keys", false, "print every configuration key with its default and environment variable, and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *showVersion {
		fmt.Fprintln(stdout, buildinfo.Line("staff-control gateway"))
		return nil
	}
	if *showKeys {
		for _, k := range config.Keys() {
			fmt.Fprintf(stdout, "%-36s %-40s default %-10q %s\n", k.Name, k.Env(), k.Default, k.Doc)
		}
		return nil
	}
	path := *configPath
	if path == "" {
		path = getenv("STAFF_GATEWAY_CONFIG")
	}
	if path == "" {
		if _, err := os.Stat(defaultConfigPath); err == nil {
			path = defaultConfigPath
		}
	}
	cfg, err := config.Load(path, getenv)
	if err != nil {
		return err
	}
	if *provision {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return provisionNow(ctx, cfg, stdout)
	}
	if *testConn {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		verdict, err := gateway.TestConnection(ctx, cfg)
		fmt.Fprintln(stdout, verdict)
		if err != nil {
			return errors.New("connection test failed")
		}
		return nil
	}
	if getenv("GOGC") == "" {
		// The heap is small and short-lived garbage plentiful (JSON); the
		// default GOGC=100 collects ~75 times a second at 20k events/s and
		// shows in the p99 acknowledgement latency. GOGC overrides.
		debug.SetGCPercent(gcPercent)
	}
	titles := new(logscrub.TitleSwitch)
	logger, closeLog, err := newLogger(cfg.Logging, stderr, titles)
	if err != nil {
		return err
	}
	defer closeLog()
	tp, err := tracing.FromEnv(ctx, getenv, "gateway")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			logger.Warn("tracing: spans not exported at shutdown", "err", err)
		}
	}()
	g, err := gateway.New(ctx, cfg, gateway.Deps{Logger: logger, Version: version(), DeviceFactories: vendors.Factories(logger.With("component", "devices")),
		TracerProvider: tp, LogTitles: titles})
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return g.Stop(sctx)
}

// provisionNow is --provision: the install script's enrolment step, the
// exchange the gateway otherwise makes at its first start, done once (no
// retries) so that a bad token fails the installation.
func provisionNow(ctx context.Context, cfg *config.Config, stdout io.Writer) error {
	path := gateway.KeyFilePath(cfg)
	if c, err := enroll.Load(path); err != nil {
		return err
	} else if c != nil {
		fmt.Fprintf(stdout, "already provisioned as gateway %s (organisation %d); key file %s\n", c.GatewayID, c.OrganizationID, path)
		return nil
	}
	if cfg.Organization.ProvisioningToken == "" {
		return errors.New("provision: organization.provisioning_token is empty")
	}
	client, err := cloudclient.NewHTTPClient(cloudclient.TLSFiles{CAFile: cfg.Server.CAFile, CertFile: cfg.Server.CertFile, KeyFile: cfg.Server.KeyFile}, 30*time.Second)
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	host, _ := os.Hostname()
	c, err := enroll.Provision(ctx, client, cfg.Server.URL, protocol.ProvisionRequest{OrganizationID: cfg.Organization.ID,
		ProvisioningToken: cfg.Organization.ProvisioningToken, Serial: cfg.Gateway.Serial, Hostname: host, Version: version()})
	if err != nil {
		return fmt.Errorf("provision with %s: %w", cfg.Server.URL, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	if err := enroll.Save(path, c); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "provisioned as gateway %s (organisation %d); key file %s\n", c.GatewayID, c.OrganizationID, path)
	return nil
}

// newLogger builds the JSON logger (logging.New: scrubbed, trace ids, window
// titles masked while titles is on): to logging.file when set, else stderr.
func newLogger(c config.Logging, stderr io.Writer, titles *logscrub.TitleSwitch) (*slog.Logger, func(), error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, nil, fmt.Errorf("config: logging.level: %w", err)
	}
	w, closeFn := stderr, func() {}
	if c.File != "" {
		f, err := os.OpenFile(c.File, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("config: logging.file: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	return logging.New(w, logging.Options{Level: level, Service: "gateway", Titles: titles}), closeFn, nil
}
