package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/isapi"
	"github.com/staffcontrol/staffcontrol/internal/logging"
	"github.com/staffcontrol/staffcontrol/internal/sim/hiksim"
)

// runSimulateHikvision runs "simulate hikvision": one simulated Hikvision
// ISAPI access terminal (internal/sim/hiksim) until interrupted or until
// --duration passes.
func runSimulateHikvision(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("simulate hikvision", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve ISAPI on")
	user := fs.String("user", "admin", "device account name")
	password := fs.String("password", "", "device account password (default $STAFF_HIKSIM_PASSWORD, else Admin12345)")
	alg := fs.String("algorithm", isapi.AlgMD5, "Digest algorithm: MD5 or SHA-256")
	rate := fs.Float64("badge-rate", 0, "generated badges per second (0: only past events)")
	past := fs.Int("past-events", 100, "events in the device's log at start")
	doors := fs.Int("doors", 2, "number of doors")
	model := fs.String("model", "DS-K1T671M", "device model")
	serial := fs.String("serial", "", "device serial number (default derived from the model)")
	heartbeat := fs.Duration("heartbeat", 10*time.Second, "alertStream heartbeat interval")
	xmlAlerts := fs.Bool("xml-alerts", false, "send alertStream parts as XML instead of JSON")
	lockFailures := fs.Int("lockout-attempts", 5, "bad logins before the account locks")
	lockFor := fs.Duration("lockout", 30*time.Minute, "how long the account stays locked")
	duration := fs.Duration("duration", 0, "how long to run (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *alg != isapi.AlgMD5 && *alg != isapi.AlgSHA256 {
		return usagef("--algorithm must be MD5 or SHA-256")
	}
	if *rate < 0 || *past < 0 || *doors < 1 || *heartbeat <= 0 || *lockFailures < 1 || *lockFor <= 0 || *duration < 0 {
		return usagef("simulate hikvision: --badge-rate, --past-events and --duration must not be negative; --doors, --lockout-attempts, --heartbeat and --lockout must be positive")
	}
	if *password == "" {
		*password = e.getenv("STAFF_HIKSIM_PASSWORD")
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	sim := hiksim.New(hiksim.Options{Addr: *listen, User: *user, Password: *password, Algorithm: *alg, BadgeRate: *rate,
		PastEvents: *past, Doors: *doors, Model: *model, Serial: *serial, HeartbeatInterval: *heartbeat, XMLAlerts: *xmlAlerts,
		MaxLoginFailures: *lockFailures, LockDuration: *lockFor, Logger: logging.New(e.stderr, logging.Options{Service: "staffctl"})})
	if err := sim.Start(); err != nil {
		return err
	}
	defer sim.Close()
	fmt.Fprintf(e.stdout, "hikvision simulator at %s (user %s)\n", sim.URL(), *user)
	<-ctx.Done()
	return nil
}
