package main

import (
	"context"
	"io"

	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if help, err := service.ParseArgs("dashboard-api", `usage: dashboard-api

Runs the Dashboard API. Configuration (environment):
  DASHBOARD_ADDR        listen address (default :3000)
  DATABASE_URL          PostgreSQL URL as the dashboard role (required)
  MIGRATE_DATABASE_URL  administrator URL; when set, migrate at start
  HTTP_READ_HEADER_TIMEOUT  time to send the request headers (default 10s)
  HTTP_BODY_MIN_RATE    slowest average body rate in bytes/s after the grace (default 16384); slower: 408
  HTTP_BODY_GRACE       time before HTTP_BODY_MIN_RATE applies (default 10s)
  HTTP_WRITE_TIMEOUT    time to answer once the request has arrived (default 60s)
  HTTP_IDLE_TIMEOUT     time a keep-alive connection may wait for its next request (default 120s)
  LOG_LEVEL             debug, info, warn or error (default info)
`, args, stderr); help || err != nil {
		return err
	}
	cfg, err := service.ConfigFromEnv(getenv, "DASHBOARD_ADDR", ":3000")
	if err != nil {
		return err
	}
	logger := service.NewLogger(stderr, cfg.LogLevel, "dashboard-api")
	return dashboard.Run(ctx, dashboard.Config{Config: cfg}, logger, nil)
}
