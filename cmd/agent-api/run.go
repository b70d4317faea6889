package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/buildinfo"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(stdout, buildinfo.Line("agent-api"))
		return nil
	}
	if help, err := service.ParseArgs("agent-api", `usage: agent-api

Runs the Agent API. Configuration (environment):
  AGENT_API_ADDR        listen address (default :3001)
  DATABASE_URL          PostgreSQL URL as the ingest role (required)
  MIGRATE_DATABASE_URL  administrator URL; when set, migrate at start
`+storage.Usage+`  TIMESCALE_URL         separate time-series database (ingest role); empty: the main one
  TIMESCALE_PROBE_INTERVAL  recovery probe period in fallback (default 60s)
  ROLLUP_INTERVAL       how often the reports' activity rollups are updated (default 1m)
  TLS_CERT_FILE, TLS_KEY_FILE  serve HTTPS with this certificate
  TLS_CLIENT_CA_FILE    verify gateways' client certificates (mTLS) against this CA
  TLS_CLIENT_AUTH       optional (default) or require a client certificate
`+service.HTTPTimeoutsUsage+`  THROTTLE_FREE_FAILURES  failed credentials a source or prefix may have before it is locked (default 5)
  THROTTLE_BASE_LOCKOUT first lockout; doubles with each further failure (default 1s)
  THROTTLE_MAX_LOCKOUT  longest lockout (default 15m)
  THROTTLE_DECAY        one failure forgiven per this much quiet time (default 1m)
  THROTTLE_MAX_ENTRIES  sources and prefixes remembered, and verified keys (default 100000 each)
  THROTTLE_VERIFIED_TTL how long an accepted key passes every lock (default 24h)
  TRUSTED_PROXIES       addresses/CIDRs whose X-Forwarded-For names the client (default none)
  RETENTION_INTERVAL    how often retention runs (default 1h; one replica at a time)
  RETENTION_DRY_RUN     true: retention only counts and records what it would delete (default false)
  LOG_LEVEL             debug, info, warn or error (default info)
  OTEL_EXPORTER_OTLP_ENDPOINT  OTLP/HTTP collector (e.g. http://tempo:4318); tracing is off without it (also OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER)
`, args, stderr); help || err != nil {
		return err
	}
	cfg, err := service.ConfigFromEnv(getenv, "AGENT_API_ADDR", ":3001")
	if err != nil {
		return err
	}
	logger := service.NewLogger(stderr, cfg.LogLevel, "agent-api")
	probe := time.Minute
	if v := getenv("TIMESCALE_PROBE_INTERVAL"); v != "" {
		if probe, err = time.ParseDuration(v); err != nil || probe <= 0 {
			return fmt.Errorf("TIMESCALE_PROBE_INTERVAL=%q: want a positive duration such as 60s", v)
		}
	}
	retentionEvery := agentapi.DefaultRetentionInterval
	if v := getenv("RETENTION_INTERVAL"); v != "" {
		if retentionEvery, err = time.ParseDuration(v); err != nil || retentionEvery < time.Minute {
			return fmt.Errorf("RETENTION_INTERVAL=%q: want a duration of at least 1m such as 1h", v)
		}
	}
	retentionDry := false
	if v := getenv("RETENTION_DRY_RUN"); v != "" {
		if retentionDry, err = strconv.ParseBool(v); err != nil {
			return fmt.Errorf("RETENTION_DRY_RUN=%q: want true or false", v)
		}
	}
	rollup := agentapi.DefaultRollupInterval
	if v := getenv("ROLLUP_INTERVAL"); v != "" {
		if rollup, err = time.ParseDuration(v); err != nil || rollup <= 0 {
			return fmt.Errorf("ROLLUP_INTERVAL=%q: want a positive duration such as 1m", v)
		}
	}
	tlsCfg, err := service.TLSFromEnv(getenv)
	if err != nil {
		return err
	}
	thr, err := service.ThrottleFromEnv(getenv)
	if err != nil {
		return err
	}
	files, err := storage.ConfigFromEnv(getenv)
	if err != nil {
		return err
	}
	tp, err := tracing.FromEnv(ctx, getenv, "agent-api")
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
	return agentapi.RunWith(ctx, agentapi.Config{Config: cfg, Storage: files,
		TimescaleURL: getenv("TIMESCALE_URL"), ProbeInterval: probe, RollupInterval: rollup, TLS: tlsCfg, Throttle: thr,
		RetentionInterval: retentionEvery, RetentionDryRun: retentionDry}, agentapi.ServerDeps{Logger: logger, TracerProvider: tp})
}
