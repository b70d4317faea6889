package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/logscrub"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if help, err := service.ParseArgs("dashboard-api", `usage: dashboard-api

Runs the Dashboard API. Configuration (environment):
  DASHBOARD_ADDR        listen address (default :3000)
  DATABASE_URL          PostgreSQL URL as the dashboard role (required)
  MIGRATE_DATABASE_URL  administrator URL; when set, migrate at start
  DASHBOARD_CORS_ORIGINS  browser origins allowed to call the API, comma-separated
                        (e.g. https://console.example.com; default none)
`+service.HTTPTimeoutsUsage+`  LOG_LEVEL             debug, info, warn or error (default info)
`, args, stderr); help || err != nil {
		return err
	}
	cfg, err := service.ConfigFromEnv(getenv, "DASHBOARD_ADDR", ":3000")
	if err != nil {
		return err
	}
	// The Dashboard API handles people's data: its logs are scrubbed of
	// passwords, tokens, keys, card numbers and e-mail addresses.
	logger := slog.New(logscrub.New(service.NewLogger(stderr, cfg.LogLevel, "dashboard-api").Handler()))
	origins, err := service.ParseOrigins("DASHBOARD_CORS_ORIGINS", getenv("DASHBOARD_CORS_ORIGINS"))
	if err != nil {
		return err
	}
	return dashboard.Run(ctx, dashboard.Config{Config: cfg, CORSOrigins: origins}, logger, nil)
}
