package service

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Config is what a cloud service reads from its environment.
type Config struct {
	// Addr is host:port to listen on (key: the service's own, e.g. AGENT_API_ADDR).
	Addr string
	// DatabaseURL connects as the service's runtime role (DATABASE_URL).
	DatabaseURL string
	// MigrateURL, when set, connects as an administrator allowed to create
	// roles and assume the owner role; the service then bootstraps the roles
	// and applies pending migrations at start (MIGRATE_DATABASE_URL).
	MigrateURL string
	// LogLevel is debug, info, warn or error (LOG_LEVEL, default info).
	LogLevel slog.Level
}

// Configuration keys shared by the cloud services.
const (
	KeyDatabaseURL = "DATABASE_URL"
	KeyMigrateURL  = "MIGRATE_DATABASE_URL"
	KeyLogLevel    = "LOG_LEVEL"
)

// ConfigFromEnv reads a Config. addrKey names the listen-address key and
// defaultAddr its default. Errors name the offending key.
func ConfigFromEnv(getenv func(string) string, addrKey, defaultAddr string) (Config, error) {
	c := Config{Addr: defaultAddr, DatabaseURL: getenv(KeyDatabaseURL), MigrateURL: getenv(KeyMigrateURL)}
	if v := getenv(addrKey); v != "" {
		c.Addr = v
	}
	if !strings.Contains(c.Addr, ":") {
		return c, fmt.Errorf("%s=%q: want host:port or :port", addrKey, c.Addr)
	}
	if c.DatabaseURL == "" {
		return c, fmt.Errorf("%s is required: the service's PostgreSQL URL (its runtime role, e.g. postgres://staff_ingest@host/db)", KeyDatabaseURL)
	}
	if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		return c, fmt.Errorf("%s: %w", KeyDatabaseURL, err)
	}
	if c.MigrateURL != "" {
		if _, err := pgxpool.ParseConfig(c.MigrateURL); err != nil {
			return c, fmt.Errorf("%s: %w", KeyMigrateURL, err)
		}
	}
	lvl, err := ParseLevel(getenv(KeyLogLevel))
	if err != nil {
		return c, fmt.Errorf("%s: %w", KeyLogLevel, err)
	}
	c.LogLevel = lvl
	return c, nil
}

// ParseLevel parses a log level name; empty means info.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (want debug, info, warn or error)", s)
}

// NewLogger returns a JSON logger writing to w.
func NewLogger(w io.Writer, level slog.Level, service string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})).With("service", service)
}

// ParseArgs parses a service binary's command line, which takes no
// arguments besides -h: it prints usage (the service's configuration keys)
// on -h and reports help=true, and refuses stray arguments.
func ParseArgs(name, usage string, args []string, stderr io.Writer) (help bool, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return false, nil
}
