package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/bench/pipeline"
)

// serveGatewayFlag is the hidden first argument that makes staffctl the
// gateway process of a running `bench e2e` (it re-executes itself so the
// gateway is a real process of its own, as deployed).
const serveGatewayFlag = "--serve-gateway"

// benchE2EConfig is the parsed flags of `bench e2e`.
type benchE2EConfig struct {
	opts     pipeline.Options
	gateway  string // "process" or "inprocess"
	jsonPath string
	progress time.Duration
	cpuProf  string
}

// parseBenchE2E parses and checks the flags; errors name the flag.
func parseBenchE2E(e env, args []string) (benchE2EConfig, error) {
	var c benchE2EConfig
	fs := flag.NewFlagSet("bench e2e", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&c.opts.DatabaseURL, "database-url", "", "administrator's URL of an existing PostgreSQL database to migrate and use (default: a throwaway cluster, removed at the end)")
	fs.IntVar(&c.opts.Replicas, "replicas", 2, "Agent API replicas behind the round-robin balancer")
	fs.IntVar(&c.opts.Agents, "agents", 20, "simulated agents")
	fs.IntVar(&c.opts.AgentBatch, "agent-batch", 100, "events per agent request")
	fs.Float64Var(&c.opts.StartRate, "start-rate", 2000, "first step's offered rate, events/s over all agents")
	fs.Float64Var(&c.opts.Step, "step", 2000, "events/s added at every step")
	fs.DurationVar(&c.opts.StepDuration, "step-duration", 20*time.Second, "how long each rate is held")
	fs.DurationVar(&c.opts.MaxDuration, "max-duration", 5*time.Minute, "longest rising-rate part")
	fs.DurationVar(&c.opts.P99Limit, "p99-limit", 100*time.Millisecond, "the run ends at the first step whose p99 acknowledgement passes this")
	fs.DurationVar(&c.opts.BacklogWindow, "backlog-window", 10*time.Second, "the run ends when the gateway's backlog has grown for this long")
	fs.IntVar(&c.opts.UplinkBatch, "uplink-batch", 1000, "the gateway's uplink.batch_max_events, and the raw CopyFrom's batch")
	fs.IntVar(&c.opts.CopyWorkers, "copy-workers", 2, "connections of the raw CopyFrom")
	fs.StringVar(&c.gateway, "gateway", "process", "process: the gateway is a child process (this executable); inprocess: in this process")
	sets := map[string]string{}
	fs.Func("gateway-set", "KEY=VALUE: a gateway configuration key (e.g. buffer.synchronous=normal, uplink.parallel=4); repeatable", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, not %q", s)
		}
		sets["STAFF_GATEWAY_"+strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(k))] = v
		return nil
	})
	fs.StringVar(&c.jsonPath, "json", "", "write the summary as JSON to this file ('-': stdout, the text summary then goes to stderr)")
	fs.StringVar(&c.cpuProf, "cpuprofile", "", "write a CPU profile of this process (agents, balancer, Agent API replicas; the gateway too with --gateway inprocess) to this file")
	fs.DurationVar(&c.progress, "progress-every", 5*time.Second, "when stderr is not a terminal: a progress line this often")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return c, err
		}
		return c, usagef("bench e2e: %v", err)
	}
	if fs.NArg() > 0 {
		return c, usagef("bench e2e: unexpected argument %q", fs.Arg(0))
	}
	o := &c.opts
	switch {
	case o.Replicas < 1:
		return c, usagef("bench e2e: --replicas must be at least 1")
	case o.Agents < 1:
		return c, usagef("bench e2e: --agents must be at least 1")
	case o.AgentBatch < 1 || o.AgentBatch > 1000:
		return c, usagef("bench e2e: --agent-batch must be between 1 and 1000 (the gateway's collector.max_batch_events)")
	case o.StartRate <= 0:
		return c, usagef("bench e2e: --start-rate must be positive")
	case o.Step < 0:
		return c, usagef("bench e2e: --step must not be negative (0 holds --start-rate)")
	case o.StepDuration < 2*time.Second:
		return c, usagef("bench e2e: --step-duration must be at least 2s")
	case o.MaxDuration < o.StepDuration:
		return c, usagef("bench e2e: --max-duration must be at least --step-duration")
	case o.P99Limit <= 0:
		return c, usagef("bench e2e: --p99-limit must be positive")
	case o.BacklogWindow < 2*time.Second:
		return c, usagef("bench e2e: --backlog-window must be at least 2s")
	case o.Step > 0 && o.StepDuration < o.BacklogWindow:
		return c, usagef("bench e2e: --step-duration (%s) must be at least --backlog-window (%s) when the rate rises: the backlog rule judges each rate on its own samples", o.StepDuration, o.BacklogWindow)
	case o.UplinkBatch < 1:
		return c, usagef("bench e2e: --uplink-batch must be at least 1")
	case o.CopyWorkers < 1:
		return c, usagef("bench e2e: --copy-workers must be at least 1")
	case c.gateway != "process" && c.gateway != "inprocess":
		return c, usagef("bench e2e: --gateway must be process or inprocess, not %q", c.gateway)
	case c.progress <= 0:
		return c, usagef("bench e2e: --progress-every must be positive")
	}
	o.ConstantRate = o.Step == 0
	o.GatewayEnv = sets
	return c, nil
}

// runBenchE2E is `staffctl bench e2e`: the whole-pipeline benchmark with a
// live progress display on stderr, the summary on stdout and JSON for
// scripts. With the hidden first argument --serve-gateway it is the
// benchmark's gateway process instead.
func runBenchE2E(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == serveGatewayFlag {
		return pipeline.ServeGateway(ctx, e.getenv, e.stderr)
	}
	c, err := parseBenchE2E(e, args)
	if err != nil {
		return err
	}
	if c.gateway == "process" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench e2e: --gateway process: %w", err)
		}
		c.opts.StartGateway = pipeline.Process([]string{exe, "bench", "e2e", serveGatewayFlag}, &tail{w: e.stderr, prefix: "gateway: "})
	}
	if c.cpuProf != "" {
		f, err := os.Create(c.cpuProf)
		if err != nil {
			return fmt.Errorf("bench e2e: --cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench e2e: --cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	disp := newProgressDisplay(e.stderr, c.progress)
	c.opts.Progress = disp.show
	sum, err := pipeline.Run(ctx, c.opts)
	disp.done()
	if err != nil {
		return fmt.Errorf("bench e2e: %w", err)
	}
	text := e.stdout
	if c.jsonPath == "-" {
		text = e.stderr
	}
	printBenchE2E(text, sum)
	if c.jsonPath != "" {
		raw, err := json.MarshalIndent(sum, "", "  ")
		if err != nil {
			return fmt.Errorf("bench e2e: --json: %w", err)
		}
		raw = append(raw, '\n')
		if c.jsonPath == "-" {
			if _, err := e.stdout.Write(raw); err != nil {
				return fmt.Errorf("bench e2e: --json: %w", err)
			}
		} else if err := os.WriteFile(c.jsonPath, raw, 0o644); err != nil {
			return fmt.Errorf("bench e2e: --json: %w", err)
		}
	}
	if !sum.Check.OK() {
		return fmt.Errorf("bench e2e: the exactly-once check failed: %d lost, %d duplicated, %d unexpected", sum.Check.Lost, sum.Check.Duplicated, sum.Check.Unexpected)
	}
	return nil
}

// printBenchE2E writes the summary as text.
func printBenchE2E(w io.Writer, s pipeline.Summary) {
	o := s.Options
	fmt.Fprintf(w, "bench e2e: %d agents (%d events/request) → gateway → %d Agent API replicas → PostgreSQL; steps of %s from %.0f events/s by %.0f\n",
		o.Agents, o.AgentBatch, o.Replicas, o.StepDuration, o.StartRate, o.Step)
	fmt.Fprintf(w, "%5s %10s %10s %10s %9s %9s %9s %9s %9s %9s  %s\n", "step", "offered/s", "acked/s", "stored/s", "p50", "p99", "backlog", "uploads/s", "upload", "commit", "verdict")
	for i, st := range s.Steps {
		verdict := "kept up"
		if !st.KeptUp {
			verdict = st.Reason
		}
		fmt.Fprintf(w, "%5d %10.0f %10.0f %10.0f %9s %9s %9d %9.1f %9s %9s  %s\n", i+1, st.Target, st.Acked, st.Stored,
			st.P50.Round(100*time.Microsecond), st.P99.Round(100*time.Microsecond), st.BacklogEnd,
			st.Uploads, st.UploadAvg.Round(100*time.Microsecond), st.CommitAvg.Round(10*time.Microsecond), verdict)
	}
	fmt.Fprintf(w, "(upload: mean latency of the gateway's upload requests; commit: mean buffer group commit, SQLite with its fsync)\n")
	fmt.Fprintf(w, "CPU per stored event, µs (bench process: agents, balancer, Agent API replicas | gateway | PostgreSQL | total):\n")
	for i, st := range s.Steps {
		fmt.Fprintf(w, "  step %d: %.0f | %.0f | %.0f | %.0f\n", i+1, st.CPU.Bench, st.CPU.Gateway, st.CPU.Postgres, st.CPU.Total)
	}
	fmt.Fprintf(w, "  raw CopyFrom, per row: %.0f (client) | - | %.0f | %.0f\n", s.CopyCPU.Bench, s.CopyCPU.Postgres, s.CopyCPU.Total)
	fmt.Fprintf(w, "stopped: %s; the backlog drained in %s\n", s.StopReason, s.Drain.Round(time.Millisecond))
	fmt.Fprintf(w, "sustained: %.0f events/s stored (step offering %.0f/s)\n", s.Sustained, s.SustainedTarget)
	fmt.Fprintf(w, "raw CopyFrom: %.0f rows/s (%d rows, %d connections, batches of %d)\n", s.Copy.Rate, s.Copy.Rows, o.CopyWorkers, o.UplinkBatch)
	fmt.Fprintf(w, "ratio: %.3f\n", s.Ratio)
	c := s.Check
	fmt.Fprintf(w, "check: %d acked, %d indeterminate (%d stored), %d rejected; %d stored; lost %d, duplicated %d, unexpected %d\n",
		c.Acked, c.Indeterminate, c.IndeterminateStored, c.Rejected, c.Stored, c.Lost, c.Duplicated, c.Unexpected)
	if s.GatewayKills > 0 {
		fmt.Fprintf(w, "gateway kills: %d\n", s.GatewayKills)
	}
}

// progressDisplay shows Progress on stderr: one line refreshed in place on
// a terminal, else a line every interval (notes always get their line).
type progressDisplay struct {
	w        io.Writer
	tty      bool
	every    time.Duration
	mu       sync.Mutex
	last     time.Time
	drawn    bool
	lastLine string
}

func newProgressDisplay(w io.Writer, every time.Duration) *progressDisplay {
	d := &progressDisplay{w: w, every: every}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			d.tty = true
		}
	}
	return d
}

func progressLine(p pipeline.Progress) string {
	backlog := fmt.Sprint(p.Backlog)
	if p.Backlog < 0 {
		backlog = "down"
	}
	return fmt.Sprintf("%6s step %d @%.0f/s: acked %.0f/s stored %.0f/s p99 %s backlog %s | sustained %.0f/s ratio≈%.2f",
		p.Elapsed.Round(time.Second), p.Step, p.Target, p.AckRate, p.UploadRate, p.P99.Round(100*time.Microsecond), backlog, p.Sustained, p.RatioSoFar)
}

func (d *progressDisplay) show(p pipeline.Progress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.Note != "" {
		d.clear()
		fmt.Fprintf(d.w, "%s %s\n", p.Elapsed.Round(time.Second), p.Note)
		return
	}
	line := progressLine(p)
	if d.tty {
		pad := ""
		if n := len(d.lastLine) - len(line); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		fmt.Fprintf(d.w, "\r%s%s", line, pad)
		d.drawn, d.lastLine = true, line
		return
	}
	if time.Since(d.last) >= d.every {
		d.last = time.Now()
		fmt.Fprintln(d.w, line)
	}
}

// clear ends the refreshed line so the next output starts a fresh one.
func (d *progressDisplay) clear() {
	if d.drawn {
		fmt.Fprintln(d.w)
		d.drawn, d.lastLine = false, ""
	}
}

func (d *progressDisplay) done() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clear()
}

// tail forwards a gateway process's output (warnings and above) to w, a
// prefix on every line.
type tail struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	part   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := strings.IndexByte(string(t.part), '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(t.w, "%s%s\n", t.prefix, t.part[:i])
		t.part = t.part[i+1:]
	}
	return len(p), nil
}
