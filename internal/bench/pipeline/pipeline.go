// Package pipeline is the whole-pipeline benchmark `staffctl bench e2e`
// (issue 17): simulated agents → a real Agent Gateway → two Agent API
// replicas behind a balancer → PostgreSQL, at rising rates until the
// agents' p99 acknowledgement passes a limit or the pipeline stops keeping
// up; then, in the same run and into the same tables, raw pgx CopyFrom of
// as many identical rows, the ratio of the two rates, and a per-id check
// that every acknowledged event is stored exactly once.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/bench/stack"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
)

// envListen is the gateway's agent listener key (also /health, /metrics).
const envListen = "STAFF_GATEWAY_GATEWAY_LISTEN"

// Options configures Run. Zero fields take the defaults.
type Options struct {
	// DatabaseURL is an administrator's URL of an existing database;
	// empty starts a throwaway cluster.
	DatabaseURL string
	// Replicas is the number of Agent API replicas (default 2).
	Replicas int
	// Agents is the number of simulated agents (default 20).
	Agents int
	// AgentBatch is events per agent request (default 100).
	AgentBatch int
	// StartRate is the first step's offered rate, events/s over all agents
	// (default 2000).
	StartRate float64
	// Step is added to the rate at every step (default 2000).
	Step float64
	// ConstantRate keeps the rate at StartRate (Step ignored).
	ConstantRate bool
	// StepDuration is how long each rate is held (default 20 s).
	StepDuration time.Duration
	// MaxDuration bounds the rising-rate part (default 5 min).
	MaxDuration time.Duration
	// P99Limit ends the run when a step's p99 acknowledgement passes it
	// (default 100 ms).
	P99Limit time.Duration
	// BacklogWindow ends the run when the gateway's backlog has grown for
	// this long (default 10 s).
	BacklogWindow time.Duration
	// UplinkBatch is the gateway's uplink.batch_max_events and the raw
	// CopyFrom's batch (default 1000).
	UplinkBatch int
	// CopyWorkers is the raw CopyFrom's connections (default 2, the
	// gateway's uplink.parallel: batches in flight at once).
	CopyWorkers int
	// ProbeRows is the size of the opening CopyFrom probe that gives the
	// live display its "ratio so far" (default 50,000; the final ratio
	// uses the closing CopyFrom of as many rows as the run stored).
	ProbeRows int64
	// GatewayEnv adds or overrides STAFF_GATEWAY_* keys of the gateway.
	GatewayEnv map[string]string
	// StartGateway starts the gateway (default InProcess).
	StartGateway Starter
	// KillGatewayAfter, when positive, kills the gateway this long into
	// the run and starts it again on the same buffer (crash test).
	KillGatewayAfter time.Duration
	// DrainTimeout bounds the wait for the backlog to drain after the
	// agents stop (default 2 min).
	DrainTimeout time.Duration
	// Progress, when set, receives a reading about every second.
	Progress func(Progress)
	// Logger receives the services' logs (nil: discarded).
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Replicas <= 0 {
		o.Replicas = 2
	}
	if o.Agents <= 0 {
		o.Agents = 20
	}
	if o.AgentBatch <= 0 {
		o.AgentBatch = 100
	}
	if o.StartRate <= 0 {
		o.StartRate = 2000
	}
	if o.Step < 0 {
		return errors.New("pipeline: the step must not be negative")
	}
	if o.Step == 0 && !o.ConstantRate {
		o.Step = 2000
	}
	if o.StepDuration <= 0 {
		o.StepDuration = 20 * time.Second
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 5 * time.Minute
	}
	if o.P99Limit <= 0 {
		o.P99Limit = 100 * time.Millisecond
	}
	if o.BacklogWindow <= 0 {
		o.BacklogWindow = 10 * time.Second
	}
	if o.UplinkBatch <= 0 {
		o.UplinkBatch = 1000
	}
	if o.CopyWorkers <= 0 {
		o.CopyWorkers = 2
	}
	if o.ProbeRows == 0 {
		o.ProbeRows = 50_000
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StartGateway == nil {
		o.StartGateway = InProcess(o.Logger)
	}
	return nil
}

// Progress is a live reading of a run.
type Progress struct {
	// Elapsed is the time since the agents started.
	Elapsed time.Duration
	// Step is the step number (from 1) and Target its offered events/s.
	Step   int
	Target float64
	// AckRate is events/s acknowledged to agents over the last reading.
	AckRate float64
	// UploadRate is events/s the cloud acknowledged to the gateway (stored)
	// over the last reading.
	UploadRate float64
	// P99 is the step's p99 acknowledgement latency so far.
	P99 time.Duration
	// Backlog is the gateway's buffered, not yet uploaded events (-1 while
	// the gateway is down).
	Backlog int64
	// Sustained is the best kept-up step's stored rate so far.
	Sustained float64
	// RatioSoFar is Sustained over the opening CopyFrom probe's rate.
	RatioSoFar float64
	// Note is an event worth showing (a kill, a failed step, the drain).
	Note string
}

// StepResult is one rate step.
type StepResult struct {
	// Target is the offered rate, events/s.
	Target float64 `json:"target_events_per_s"`
	// Duration is how long the step ran.
	Duration time.Duration `json:"duration_ns"`
	// Acked is events/s acknowledged to agents.
	Acked float64 `json:"acked_events_per_s"`
	// Stored is events/s the cloud acknowledged to the gateway (stored in
	// PostgreSQL), from the gateway's gateway_uplink_events_total.
	Stored float64 `json:"stored_events_per_s"`
	// P50 and P99 are the agents' acknowledgement latencies.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	// Uploads is the gateway's upload requests per second and UploadAvg
	// their mean latency (the balancer, an Agent API replica, PostgreSQL).
	Uploads   float64       `json:"uploads_per_s"`
	UploadAvg time.Duration `json:"upload_avg_ns"`
	// Commits is the buffer's group commits per second and CommitAvg their
	// mean latency (SQLite and its fsync: what an acknowledgement waits
	// for).
	Commits   float64       `json:"commits_per_s"`
	CommitAvg time.Duration `json:"commit_avg_ns"`
	// CPU is the CPU time per stored event over the step, by process.
	CPU CPU `json:"cpu_per_event"`
	// BacklogEnd is the gateway's backlog at the end of the step.
	BacklogEnd int64 `json:"backlog_end"`
	// KeptUp says the step met every rule; Reason says which it broke.
	KeptUp bool   `json:"kept_up"`
	Reason string `json:"reason,omitempty"`
}

// Summary is the result of a run.
type Summary struct {
	// Sustained is the stored events/s of the highest step the pipeline
	// kept up with (0 if none), and SustainedTarget that step's offer.
	Sustained       float64 `json:"sustained_events_per_s"`
	SustainedTarget float64 `json:"sustained_target_events_per_s"`
	// Copy is the closing raw CopyFrom (as many rows as the run stored)
	// and Probe the opening one.
	Copy  CopyResult `json:"copyfrom"`
	Probe CopyResult `json:"copyfrom_probe"`
	// CopyCPU is the closing CopyFrom's CPU time per row (client and
	// PostgreSQL), to compare with the steps' CPU per event.
	CopyCPU CPU `json:"copyfrom_cpu_per_row"`
	// Ratio is Sustained / Copy.Rate.
	Ratio float64 `json:"ratio"`
	// StopReason says why the rising rates ended.
	StopReason string `json:"stop_reason"`
	// Steps are the steps run.
	Steps []StepResult `json:"steps"`
	// Check is the per-id verdict.
	Check Check `json:"check"`
	// AckedBeforeKill counts ids acknowledged before the gateway was killed
	// (with KillGatewayAfter), GatewayKills the kills.
	AckedBeforeKill int64 `json:"acked_before_kill,omitempty"`
	GatewayKills    int   `json:"gateway_kills"`
	// Agents is the simulator's summary.
	Agents agentsim.Result `json:"agents"`
	// Elapsed is the rising-rate part's length.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Drain is how long the backlog took to empty after the agents
	// stopped.
	Drain time.Duration `json:"drain_ns"`
	// Options records the run's shape.
	Options SummaryOptions `json:"options"`
}

// SummaryOptions are the options a summary records.
type SummaryOptions struct {
	Replicas     int           `json:"replicas"`
	Agents       int           `json:"agents"`
	AgentBatch   int           `json:"agent_batch"`
	StartRate    float64       `json:"start_rate"`
	Step         float64       `json:"step"`
	StepDuration time.Duration `json:"step_duration_ns"`
	P99Limit     time.Duration `json:"p99_limit_ns"`
	UplinkBatch  int           `json:"uplink_batch"`
	CopyWorkers  int           `json:"copy_workers"`
}

// Run runs the benchmark: the stack, the gateway, the rising rates, the
// drain, the per-id check and the raw CopyFrom. A run that could not
// measure returns an error; a run that measured returns its Summary even
// when the check found losses (Summary.Check.OK tells).
func Run(ctx context.Context, opts Options) (Summary, error) {
	if err := opts.defaults(); err != nil {
		return Summary{}, err
	}
	sum := Summary{Options: SummaryOptions{Replicas: opts.Replicas, Agents: opts.Agents, AgentBatch: opts.AgentBatch, StartRate: opts.StartRate,
		Step: opts.Step, StepDuration: opts.StepDuration, P99Limit: opts.P99Limit, UplinkBatch: opts.UplinkBatch, CopyWorkers: opts.CopyWorkers}}
	if opts.ConstantRate {
		sum.Options.Step = 0
	}
	st, err := stack.Start(ctx, stack.Options{DatabaseURL: opts.DatabaseURL, Replicas: opts.Replicas, Logger: opts.Logger})
	if err != nil {
		return sum, err
	}
	defer st.Close(context.WithoutCancel(ctx))
	suffix := uuid.NewString()[:8]
	org, err := st.NewOrganization(ctx, "Bench e2e "+suffix, "bench-e2e-"+suffix)
	if err != nil {
		return sum, err
	}
	reg, err := st.RegisterGateway(ctx, org.ID, "GW-BENCH-"+suffix)
	if err != nil {
		return sum, err
	}
	// The CopyFrom rows go to an organisation of their own, in the same
	// tables, so the per-id check reads only the pipeline's rows.
	copyOrg, err := st.NewOrganization(ctx, "Bench copy "+suffix, "bench-copy-"+suffix)
	if err != nil {
		return sum, err
	}
	copyReg, err := st.RegisterGateway(ctx, copyOrg.ID, "GW-COPY-"+suffix)
	if err != nil {
		return sum, err
	}
	copyGW, err := uuid.Parse(copyReg.ID)
	if err != nil {
		return sum, fmt.Errorf("pipeline: gateway id: %w", err)
	}
	conn, err := pgx.Connect(ctx, st.AdminURL)
	if err != nil {
		return sum, fmt.Errorf("pipeline: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var gwPID atomic.Int64
	meter := newCPUMeter(ctx, conn, func() int { return int(gwPID.Load()) })
	if opts.ProbeRows > 0 {
		if sum.Probe, err = rawCopy(ctx, st.AdminURL, copyOrg.ID, copyGW, opts.ProbeRows, opts.UplinkBatch, opts.CopyWorkers); err != nil {
			return sum, err
		}
	}

	dir, err := os.MkdirTemp("", "staffcontrol-bench-e2e-")
	if err != nil {
		return sum, fmt.Errorf("pipeline: %w", err)
	}
	defer os.RemoveAll(dir)
	listen, err := freeLoopback()
	if err != nil {
		return sum, err
	}
	env := st.GatewayEnv(reg, dir, listen)
	env["STAFF_GATEWAY_UPLINK_BATCH_MAX_EVENTS"] = fmt.Sprint(opts.UplinkBatch)
	// Batches fill to UplinkBatch (the CopyFrom's batch) at rates of
	// 1,000 events/s and more; a backlog drains continuously anyway.
	env["STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL"] = "1s"
	env["STAFF_GATEWAY_UPLINK_BACKOFF_INITIAL"] = "50ms"
	env["STAFF_GATEWAY_UPLINK_BACKOFF_MAX"] = "1s"
	env["STAFF_GATEWAY_COLLECTOR_RETRY_AFTER"] = "1s"
	for k, v := range opts.GatewayEnv {
		env[k] = v
	}
	gw, err := opts.StartGateway(ctx, env)
	if err != nil {
		return sum, err
	}
	setPID := func(g Gateway) {
		if p, ok := g.(interface{ PID() int }); ok {
			gwPID.Store(int64(p.PID()))
		}
	}
	setPID(gw)
	defer func() {
		if gw != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = gw.Stop(sctx)
		}
	}()

	r := &runner{opts: opts, ledger: NewLedger(), base: "http://" + listen, client: &http.Client{Timeout: 5 * time.Second}, probe: sum.Probe.Rate,
		meter: meter, started: setPID}
	r.rate.Store(math.Float64bits(opts.StartRate / float64(opts.Agents)))
	agentCtx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()
	var agentRes agentsim.Result
	var agentErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		agentRes, agentErr = agentsim.Run(agentCtx, agentsim.Options{GatewayURL: r.base, EnrolmentSecret: org.EnrolmentSecret,
			Agents: opts.Agents, BatchSize: opts.AgentBatch, Logger: opts.Logger,
			RateFunc:       func() float64 { return math.Float64frombits(r.rate.Load()) },
			Observe:        r.observe,
			ObserveLatency: r.latency,
			// Agents retry a refused or unreachable gateway (during a
			// restart) quickly, as the bench wants the backlog, not the
			// agents, to show a slow pipeline.
			MaxRetryAfter: time.Second,
		})
	}()
	gw, err = r.ramp(ctx, &sum, gw, env)
	stopAgents()
	wg.Wait()
	if err != nil {
		return sum, err
	}
	if agentErr != nil {
		return sum, agentErr
	}
	sum.Agents = agentRes
	r.note("agents stopped; draining the gateway's backlog")
	drainStart := time.Now()
	if err := r.drain(ctx); err != nil {
		return sum, err
	}
	sum.Drain = time.Since(drainStart)
	// The gateway has nothing left to do: stopped, it takes no CPU from
	// the CopyFrom measurement (nor counts in its CPU figures).
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	err = gw.Stop(sctx)
	cancel()
	gw = nil
	gwPID.Store(0)
	if err != nil {
		opts.Logger.WarnContext(ctx, "pipeline: stopping the gateway", "err", err)
	}

	if sum.Check, err = r.ledger.Verify(ctx, conn, org.ID); err != nil {
		return sum, err
	}
	r.note(fmt.Sprintf("drained in %s; checked %d stored ids; raw CopyFrom of as many rows", sum.Drain.Round(time.Millisecond), sum.Check.Stored))
	before := meter.read()
	if sum.Copy, err = rawCopy(ctx, st.AdminURL, copyOrg.ID, copyGW, sum.Check.Stored, opts.UplinkBatch, opts.CopyWorkers); err != nil {
		return sum, err
	}
	sum.CopyCPU = meter.read().sub(before).per(sum.Copy.Rows)
	if sum.Copy.Rate > 0 {
		sum.Ratio = sum.Sustained / sum.Copy.Rate
	}
	return sum, nil
}

// freeLoopback picks a free loopback port for the gateway, kept across a
// restart.
func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pipeline: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// runner is the state of the rising-rate part.
type runner struct {
	opts   Options
	ledger *Ledger
	base   string
	client *http.Client
	probe  float64

	rate  atomic.Uint64 // float64 bits: events/s per agent
	acked atomic.Int64

	mu  sync.Mutex
	lat []time.Duration // the current step's acknowledgement latencies

	last      Progress
	sustained float64
	meter     *cpuMeter
	started   func(Gateway) // told of every gateway started
}

func (r *runner) observe(ids []string, o agentsim.Outcome) {
	r.ledger.Observe(ids, o)
	if o == agentsim.Acked {
		r.acked.Add(int64(len(ids)))
	}
}

func (r *runner) latency(d time.Duration) {
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.mu.Unlock()
}

// stepLatencies returns the current step's p50 and p99; reset starts a
// new step.
func (r *runner) stepLatencies(reset bool) (p50, p99 time.Duration) {
	r.mu.Lock()
	s := slices.Clone(r.lat)
	if reset {
		r.lat = r.lat[:0]
	}
	r.mu.Unlock()
	if len(s) == 0 {
		return 0, 0
	}
	slices.Sort(s)
	return s[min(len(s)-1, len(s)/2)], s[min(len(s)-1, len(s)*99/100)]
}

func (r *runner) note(s string) {
	if r.opts.Progress != nil {
		p := r.last
		p.Note = s
		r.opts.Progress(p)
	}
}

// sample is one backlog reading.
type sample struct {
	at      time.Time
	backlog int64
}

// growing reports whether the backlog grew over the whole window: the
// samples span it and, split in thirds by time, each third's mean backlog
// exceeds the one before by more than the larger of half an uplink batch
// and 1 % of the events offered over the window (rate events/s). A backlog
// that oscillates by the batches in flight, or that stepped up once to a
// new level when the rate rose, is not growing; one that falls behind by
// more than about 0.15 batches or 3 % of the offered rate a second is. (A
// floor of half a batch alone fired at 10,000–14,000 events/s on backlogs
// of 1,500 events — a tenth of a second of events, drained in 0.4 s — that
// wandered with the batches in flight.)
func growing(samples []sample, window time.Duration, batch int, rate float64) bool {
	if len(samples) < 6 {
		return false
	}
	t0, span := samples[0].at, samples[len(samples)-1].at.Sub(samples[0].at)
	if span < window-window/20 {
		return false
	}
	var sum [3]float64
	var n [3]int
	for _, s := range samples {
		k := min(2, int(3*s.at.Sub(t0)/(span+1)))
		sum[k] += float64(s.backlog)
		n[k]++
	}
	for k := range n {
		if n[k] == 0 {
			return false
		}
		sum[k] /= float64(n[k])
	}
	floor := max(float64(batch)/2, rate*window.Seconds()/100)
	return sum[1]-sum[0] > floor && sum[2]-sum[1] > floor
}

// ramp runs the steps until a rule ends them; it returns the gateway
// running at the end (a kill replaces it).
func (r *runner) ramp(ctx context.Context, sum *Summary, gw Gateway, env map[string]string) (Gateway, error) {
	// Warm-up: the agents enrol and register before the first step's
	// clock starts (its first acknowledgement).
	for warm := time.Now(); r.acked.Load() == 0 && time.Since(warm) < time.Minute; {
		select {
		case <-ctx.Done():
			return gw, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	start := time.Now()
	defer func() { sum.Elapsed = time.Since(start) }()
	var window []sample
	var uploaded, lastUploaded int64 // stored events, resets of the counter folded in
	var cur gatewayMetrics           // the last reading (its counters restart with a gateway)
	lastAcked := r.acked.Load()
	lastAt := start
	var uploadedAtLast int64
	killed := false
	reading := func() (gatewayMetrics, bool) {
		m, err := scrape(ctx, r.client, r.base)
		if err != nil {
			return gatewayMetrics{backlog: -1}, false
		}
		if m.uploaded < lastUploaded {
			lastUploaded = 0 // a restarted gateway counts from zero
		}
		uploaded += m.uploaded - lastUploaded
		lastUploaded = m.uploaded
		cur = m
		return m, true
	}
	reading()
	prevTarget := -1.0
	for step := 1; ; step++ {
		target := r.opts.StartRate
		if !r.opts.ConstantRate {
			target += float64(step-1) * r.opts.Step
		}
		if target != prevTarget {
			// A new rate sets a new level for the backlog (more events
			// per batch in flight): the rule judges each rate on its own
			// samples, not on the climb from the last rate's level.
			window, prevTarget = window[:0], target
		}
		r.rate.Store(math.Float64bits(target / float64(r.opts.Agents)))
		r.stepLatencies(true)
		stepStart, stepAcked, stepUploaded, stepMetrics, stepCPU := time.Now(), r.acked.Load(), uploaded, cur, r.meter.read()
		stepKills := sum.GatewayKills
		res := StepResult{Target: target, KeptUp: true}
		for time.Since(stepStart) < r.opts.StepDuration && res.KeptUp {
			select {
			case <-ctx.Done():
				return gw, ctx.Err()
			case <-time.After(time.Second):
			}
			note := ""
			if r.opts.KillGatewayAfter > 0 && !killed && time.Since(start) >= r.opts.KillGatewayAfter {
				killed = true
				sum.AckedBeforeKill = r.acked.Load()
				if err := gw.Kill(); err != nil {
					return gw, err
				}
				sum.GatewayKills++
				// The events uploaded since the last reading are not
				// counted (the counter died with the process): the kill's
				// step under-reports its stored rate by up to a second.
				window = window[:0]
				var err error
				if gw, err = r.opts.StartGateway(ctx, env); err != nil {
					return nil, fmt.Errorf("pipeline: restart after kill: %w", err)
				}
				r.started(gw)
				note = fmt.Sprintf("gateway killed after %d acked events and restarted", sum.AckedBeforeKill)
			}
			m, ok := reading()
			now := time.Now()
			if ok {
				window = append(window, sample{now, m.backlog})
				for len(window) > 1 && now.Sub(window[1].at) >= r.opts.BacklogWindow {
					window = window[1:]
				}
			}
			acked := r.acked.Load()
			secs := now.Sub(lastAt).Seconds()
			_, p99 := r.stepLatencies(false)
			p := Progress{Elapsed: now.Sub(start), Step: step, Target: target, AckRate: float64(acked-lastAcked) / secs,
				P99: p99, Backlog: m.backlog, Sustained: r.sustained, Note: note}
			p.UploadRate = float64(uploaded-uploadedAtLast) / secs
			uploadedAtLast = uploaded
			if r.probe > 0 {
				p.RatioSoFar = r.sustained / r.probe
			}
			lastAcked, lastAt = acked, now
			r.last = p
			if r.opts.Progress != nil {
				r.opts.Progress(p)
			}
			if !killed || time.Since(start) > r.opts.KillGatewayAfter+r.opts.BacklogWindow {
				if growing(window, r.opts.BacklogWindow, r.opts.UplinkBatch, target) {
					res.KeptUp, res.Reason = false, fmt.Sprintf("the gateway's backlog grew for %s (now %d events)", r.opts.BacklogWindow, m.backlog)
				}
			}
		}
		res.Duration = time.Since(stepStart)
		if kills := sum.GatewayKills; kills == stepKills {
			// (A step with a kill has no CPU figure: the killed
			// gateway's time went with it.)
			res.CPU = r.meter.read().sub(stepCPU).per(uploaded - stepUploaded)
		}
		res.Acked = float64(r.acked.Load()-stepAcked) / res.Duration.Seconds()
		res.Stored = float64(uploaded-stepUploaded) / res.Duration.Seconds()
		res.P50, res.P99 = r.stepLatencies(false)
		if n := cur.uploads - stepMetrics.uploads; n > 0 && cur.uploads >= stepMetrics.uploads {
			res.Uploads = float64(n) / res.Duration.Seconds()
			res.UploadAvg = time.Duration((cur.uploadSeconds - stepMetrics.uploadSeconds) / float64(n) * float64(time.Second))
		}
		if n := cur.commits - stepMetrics.commits; n > 0 && cur.commits >= stepMetrics.commits {
			res.Commits = float64(n) / res.Duration.Seconds()
			res.CommitAvg = time.Duration((cur.commitSeconds - stepMetrics.commitSeconds) / float64(n) * float64(time.Second))
		}
		res.BacklogEnd = r.last.Backlog
		if res.KeptUp && res.P99 > r.opts.P99Limit {
			res.KeptUp, res.Reason = false, fmt.Sprintf("p99 acknowledgement %s > %s", res.P99.Round(time.Millisecond), r.opts.P99Limit)
		}
		if res.KeptUp && res.Acked < 0.9*target {
			res.KeptUp, res.Reason = false, fmt.Sprintf("agents got %.0f events/s acknowledged, under 90 %% of the %.0f offered", res.Acked, target)
		}
		sum.Steps = append(sum.Steps, res)
		if res.KeptUp && res.Stored > r.sustained {
			r.sustained, sum.Sustained, sum.SustainedTarget = res.Stored, res.Stored, target
		}
		if !res.KeptUp {
			sum.StopReason = fmt.Sprintf("step %d (%.0f events/s): %s", step, target, res.Reason)
			r.note("stopped: " + sum.StopReason)
			return gw, nil
		}
		if time.Since(start)+r.opts.StepDuration > r.opts.MaxDuration {
			sum.StopReason = fmt.Sprintf("the maximum duration %s was reached, the pipeline keeping up", r.opts.MaxDuration)
			r.note("stopped: " + sum.StopReason)
			return gw, nil
		}
	}
}

// drain waits until the gateway's backlog is empty (two readings in a
// row) or DrainTimeout passes; a backlog left is not an error here: the
// per-id check counts what it left unstored.
func (r *runner) drain(ctx context.Context) error {
	deadline := time.Now().Add(r.opts.DrainTimeout)
	zeros := 0
	for time.Now().Before(deadline) {
		m, err := scrape(ctx, r.client, r.base)
		if err == nil && m.backlog == 0 {
			if zeros++; zeros == 2 {
				return nil
			}
		} else {
			zeros = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.note(fmt.Sprintf("the backlog did not drain within %s", r.opts.DrainTimeout))
	return nil
}
