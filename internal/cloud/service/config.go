package service

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/logging"
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
	// ContextKey signs the tenant contexts the service sets
	// (TENANT_CONTEXT_KEY, "<key id>:<base64url secret>"; required). The
	// database must hold the same key (staffctl migrate up, or the service
	// itself when MIGRATE_DATABASE_URL is set).
	ContextKey postgres.ContextKey
	// LogLevel is debug, info, warn or error (LOG_LEVEL, default info).
	LogLevel slog.Level
	// HTTP bounds how long a client may hold a connection (HTTP_*).
	HTTP HTTPTimeouts
}

// HTTPTimeouts bound how long a client may take at each step of a request,
// so that no connection is held by a client that stalls: the headers, the
// body (a minimum rate after a grace, so a large upload on a slow but
// honest link still passes), the answer, and an idle keep-alive. A zero
// field takes its default.
type HTTPTimeouts struct {
	// ReadHeader is the time to send the request line and headers
	// (HTTP_READ_HEADER_TIMEOUT, default 10 s).
	ReadHeader time.Duration
	// BodyMinRate is the slowest average rate, in bytes per second, at
	// which a request body may arrive once BodyGrace has passed
	// (HTTP_BODY_MIN_RATE, default 16384). A slower body is cut off: 408.
	BodyMinRate int64
	// BodyGrace is how long a body may take before BodyMinRate applies
	// (HTTP_BODY_GRACE, default 10 s).
	BodyGrace time.Duration
	// Write is the time to answer once the request and its body have
	// arrived (HTTP_WRITE_TIMEOUT, default 60 s). Long-polls extend it by
	// their wait; WebSockets manage their own deadlines.
	Write time.Duration
	// Idle is how long a keep-alive connection may wait for its next
	// request (HTTP_IDLE_TIMEOUT, default 120 s).
	Idle time.Duration
}

// Defaults of HTTPTimeouts.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyMinRate       = 16 << 10
	DefaultBodyGrace         = 10 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// WithDefaults returns t with every zero field set to its default.
func (t HTTPTimeouts) WithDefaults() HTTPTimeouts {
	if t.ReadHeader <= 0 {
		t.ReadHeader = DefaultReadHeaderTimeout
	}
	if t.BodyMinRate <= 0 {
		t.BodyMinRate = DefaultBodyMinRate
	}
	if t.BodyGrace <= 0 {
		t.BodyGrace = DefaultBodyGrace
	}
	if t.Write <= 0 {
		t.Write = DefaultWriteTimeout
	}
	if t.Idle <= 0 {
		t.Idle = DefaultIdleTimeout
	}
	return t
}

// Server timeout configuration keys shared by the cloud services.
const (
	KeyReadHeaderTimeout = "HTTP_READ_HEADER_TIMEOUT"
	KeyBodyMinRate       = "HTTP_BODY_MIN_RATE"
	KeyBodyGrace         = "HTTP_BODY_GRACE"
	KeyWriteTimeout      = "HTTP_WRITE_TIMEOUT"
	KeyIdleTimeout       = "HTTP_IDLE_TIMEOUT"
)

// HTTPTimeoutsUsage documents the HTTP_* keys in a service's usage text.
const HTTPTimeoutsUsage = `  HTTP_READ_HEADER_TIMEOUT  time to send the request headers (default 10s)
  HTTP_BODY_MIN_RATE    slowest average body rate in bytes/s after the grace (default 16384); slower: 408
  HTTP_BODY_GRACE       time before HTTP_BODY_MIN_RATE applies (default 10s)
  HTTP_WRITE_TIMEOUT    time to answer once the request has arrived (default 60s)
  HTTP_IDLE_TIMEOUT     time a keep-alive connection may wait for its next request (default 120s)
`

// HTTPTimeoutsFromEnv reads HTTPTimeouts; absent keys take their defaults,
// and errors name the key.
func HTTPTimeoutsFromEnv(getenv func(string) string) (HTTPTimeouts, error) {
	var t HTTPTimeouts
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{KeyReadHeaderTimeout, &t.ReadHeader}, {KeyBodyGrace, &t.BodyGrace}, {KeyWriteTimeout, &t.Write}, {KeyIdleTimeout, &t.Idle}} {
		v := getenv(d.key)
		if v == "" {
			continue
		}
		x, err := time.ParseDuration(v)
		if err != nil || x <= 0 {
			return t, fmt.Errorf("%s=%q: want a positive duration such as 30s", d.key, v)
		}
		*d.dst = x
	}
	if v := getenv(KeyBodyMinRate); v != "" {
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil || x <= 0 {
			return t, fmt.Errorf("%s=%q: want a positive number of bytes per second such as 16384", KeyBodyMinRate, v)
		}
		t.BodyMinRate = x
	}
	return t.WithDefaults(), nil
}

// Configuration keys shared by the cloud services.
const (
	KeyDatabaseURL = "DATABASE_URL"
	KeyMigrateURL  = "MIGRATE_DATABASE_URL"
	KeyLogLevel    = "LOG_LEVEL"
	KeyContextKey  = "TENANT_CONTEXT_KEY"
)

// ConfigFromEnv reads a Config. addrKey names the listen-address key and
// defaultAddr its default. Errors name the offending key.
func ConfigFromEnv(getenv func(string) string, addrKey, defaultAddr string) (Config, error) {
	var err error
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
	if v := getenv(KeyContextKey); v == "" {
		return c, fmt.Errorf("%s is required: the key that signs tenant contexts, \"<key id>:<base64url of 32 random bytes>\" (staffctl tenant-key generate)", KeyContextKey)
	} else if c.ContextKey, err = postgres.ParseContextKey(v); err != nil {
		return c, fmt.Errorf("%s: %w", KeyContextKey, err)
	}
	lvl, err := ParseLevel(getenv(KeyLogLevel))
	if err != nil {
		return c, fmt.Errorf("%s: %w", KeyLogLevel, err)
	}
	c.LogLevel = lvl
	if c.HTTP, err = HTTPTimeoutsFromEnv(getenv); err != nil {
		return c, err
	}
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

// NewLogger returns the JSON logger of every binary (logging.New): scrubbed,
// with the service's name and the context's trace and request ids.
func NewLogger(w io.Writer, level slog.Level, service string) *slog.Logger {
	return logging.New(w, logging.Options{Level: level, Service: service})
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
