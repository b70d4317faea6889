package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/logging"
	"github.com/staffcontrol/staffcontrol/internal/sim/zksim"
)

// runSimulateZKTeco runs "simulate zkteco": one simulated ZKTeco terminal
// (internal/sim/zksim) on TCP (and UDP on the same port) until interrupted
// or --duration ends.
func runSimulateZKTeco(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("simulate zkteco", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	listen := fs.String("listen", "127.0.0.1:4370", "listen address (TCP, and UDP with --udp)")
	udp := fs.Bool("udp", true, "also serve the protocol on UDP on the same port")
	users := fs.Int("users", 10, "seeded users")
	records := fs.Int("records", 100, "seeded past attendance records")
	commKey := fs.Uint("comm-key", 0, "the device's comm key (0: none; at most 999999)")
	rate := fs.Float64("badge-rate", 0, "live badge-ins per second from random users (0: none)")
	zone := fs.String("time-zone", "UTC", "IANA zone of the device clock")
	serial := fs.String("serial", "", "serial number (default from the port)")
	reboot := fs.Duration("reboot-window", 5*time.Second, "how long a restart refuses connections")
	gap := fs.Duration("packet-gap", 0, "pause between the packets of a chunked answer (a few ms for node-zklib)")
	duration := fs.Duration("duration", 0, "how long to run (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *commKey > 999999 || *users < 0 || *records < 0 || *rate < 0 {
		return usagef("--comm-key must be 0..999999; --users, --records and --badge-rate must not be negative")
	}
	loc, err := time.LoadLocation(*zone)
	if err != nil {
		return usagef("--time-zone: %v", err)
	}
	opts := zksim.Options{Addr: *listen, UDP: *udp, CommKey: uint32(*commKey), Users: *users, Records: *records,
		BadgeRate: *rate, Location: loc, Serial: *serial, RebootWindow: *reboot, PacketGap: *gap, Seed: uint64(time.Now().UnixNano()),
		Logger: logging.New(e.stderr, logging.Options{Service: "staffctl"})}
	if *users == 0 {
		opts.Users = -1
	}
	if *records == 0 {
		opts.Records = -1
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	sim := zksim.New(opts)
	if err := sim.Start(ctx); err != nil {
		return err
	}
	defer sim.Close()
	fmt.Fprintf(e.stdout, "zkteco simulator on %s (serial %s, %d users, %d records)\n", sim.Addr(), sim.Serial(), len(sim.Users()), len(sim.Records()))
	<-ctx.Done()
	fmt.Fprintf(e.stdout, "records=%d unlocks=%d restarts=%d\n", len(sim.Records()), len(sim.Unlocks()), sim.Restarts())
	return nil
}
