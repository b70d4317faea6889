package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/buildinfo"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(stdout, buildinfo.Line("dashboard-api"))
		return nil
	}
	if help, err := service.ParseArgs("dashboard-api", `usage: dashboard-api

Runs the Dashboard API. Configuration (environment):
  DASHBOARD_ADDR        listen address (default :3000)
  DATABASE_URL          PostgreSQL URL as the dashboard role (required)
  MIGRATE_DATABASE_URL  administrator URL; when set, migrate at start
  TENANT_CONTEXT_KEY    "<key id>:<base64url secret>" signing tenant contexts (required)
  DASHBOARD_TOKEN_KEYS  access-token signing keys, "id:base64-seed[,id:seed…]" (required;
                        the first signs, all verify; staffctl token-key prints one)
  DASHBOARD_TOKEN_ISSUER  the tokens' issuer and audience (default staffcontrol-dashboard)
  DASHBOARD_ACCESS_TTL  access-token lifetime, 1m to 15m (default 10m)
  DASHBOARD_ADMIN_DATABASE_URL  PostgreSQL URL as the platform-admin role (staff_admin),
                        for platform ADMIN users (default none: they are refused)
  DASHBOARD_CORS_ORIGINS  browser origins allowed to call the API, comma-separated
                        (e.g. https://console.example.com; default none)
  TRUSTED_PROXIES       peers whose X-Forwarded-For names the client (default none)
  SIGNIN_MAX_FAILURES   failed sign-ins before an account locks (default 5)
  SIGNIN_LOCK_BASE      first lock of an account (default 1m; doubles per lockout)
  SIGNIN_LOCK_MAX       longest lock (default 1h)
  SIGNIN_REFRESH_IDLE   a refresh token's life (default 336h)
  SIGNIN_REFRESH_MAX    a session's life from sign-in (default 720h)
  TIMESCALE_URL         separate time-series database (dashboard role); empty: the main one
  DASHBOARD_ADMIN_TIMESCALE_URL  the same as the platform-admin role (required with
                        TIMESCALE_URL and DASHBOARD_ADMIN_DATABASE_URL)
Files (screenshots' download URLs; the local driver's are served at STORAGE_PUBLIC_URL's path):
`+storage.Usage+service.HTTPTimeoutsUsage+`  LOG_LEVEL             debug, info, warn or error (default info)
  OTEL_EXPORTER_OTLP_ENDPOINT  OTLP/HTTP collector (e.g. http://tempo:4318); tracing is off without it (also OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER)
`, args, stderr); help || err != nil {
		return err
	}
	cfg, err := service.ConfigFromEnv(getenv, "DASHBOARD_ADDR", ":3000")
	if err != nil {
		return err
	}
	dcfg, err := dashboardConfig(cfg, getenv)
	if err != nil {
		return err
	}
	// The Dashboard API handles people's data: its logs are scrubbed of
	// passwords, tokens, keys, card numbers and e-mail addresses.
	logger := service.NewLogger(stderr, cfg.LogLevel, "dashboard-api")
	tp, err := tracing.FromEnv(ctx, getenv, "dashboard-api")
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
	// Tracing off: no provider, so the middleware adds nothing.
	var deps dashboard.ServerDeps
	deps.Logger = logger
	if tp.Enabled() {
		deps.TracerProvider = tp
	}
	return dashboard.RunWith(ctx, dcfg, deps)
}

// dashboardConfig reads the Dashboard API's own keys; errors name the key.
func dashboardConfig(cfg service.Config, getenv func(string) string) (dashboard.Config, error) {
	d := dashboard.Config{Config: cfg, TokenIssuer: getenv("DASHBOARD_TOKEN_ISSUER"), AdminDatabaseURL: getenv("DASHBOARD_ADMIN_DATABASE_URL"),
		TimescaleURL: getenv("TIMESCALE_URL"), AdminTimescaleURL: getenv("DASHBOARD_ADMIN_TIMESCALE_URL")}
	var err error
	if d.CORSOrigins, err = service.ParseOrigins("DASHBOARD_CORS_ORIGINS", getenv("DASHBOARD_CORS_ORIGINS")); err != nil {
		return d, err
	}
	keys := getenv("DASHBOARD_TOKEN_KEYS")
	if keys == "" {
		return d, fmt.Errorf("DASHBOARD_TOKEN_KEYS is required: the access-token signing keys, \"id:base64-seed\" (staffctl token-key prints a new one)")
	}
	if d.TokenKeys, err = accesstoken.ParseKeys(keys); err != nil {
		return d, fmt.Errorf("DASHBOARD_TOKEN_KEYS: %w", err)
	}
	if d.TrustedProxies, err = throttle.ParseTrustedProxies(getenv(service.KeyTrustedProxies)); err != nil {
		return d, fmt.Errorf("%s: %w", service.KeyTrustedProxies, err)
	}
	for _, k := range []struct {
		key string
		dst *time.Duration
	}{{"DASHBOARD_ACCESS_TTL", &d.AccessTTL}, {"SIGNIN_LOCK_BASE", &d.SignIn.LockBase}, {"SIGNIN_LOCK_MAX", &d.SignIn.LockMax},
		{"SIGNIN_REFRESH_IDLE", &d.SignIn.RefreshIdle}, {"SIGNIN_REFRESH_MAX", &d.SignIn.RefreshMax}} {
		v := getenv(k.key)
		if v == "" {
			continue
		}
		if *k.dst, err = time.ParseDuration(v); err != nil || *k.dst <= 0 {
			return d, fmt.Errorf("%s=%q: want a positive duration such as 10m", k.key, v)
		}
	}
	if v := getenv("SIGNIN_MAX_FAILURES"); v != "" {
		if d.SignIn.MaxFailures, err = strconv.Atoi(v); err != nil || d.SignIn.MaxFailures <= 0 {
			return d, fmt.Errorf("SIGNIN_MAX_FAILURES=%q: want a positive whole number such as 5", v)
		}
	}
	if d.Storage, err = storage.ConfigFromEnv(getenv); err != nil {
		return d, err
	}
	if err := d.Storage.CheckURLs(); err != nil {
		return d, err
	}
	if d.TimescaleURL != "" && d.AdminDatabaseURL != "" && d.AdminTimescaleURL == "" {
		return d, errors.New("DASHBOARD_ADMIN_TIMESCALE_URL is required with TIMESCALE_URL and DASHBOARD_ADMIN_DATABASE_URL: the time-series database as the platform-admin role")
	}
	return d, nil
}
