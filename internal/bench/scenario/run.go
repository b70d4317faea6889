package scenario

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/bench/stack"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
	"github.com/staffcontrol/staffcontrol/internal/sim/fleetsim"
)

// Options configure Run.
type Options struct {
	// Scenario is what runs (already scaled: see Scenario.Scaled).
	Scenario Scenario
	// Scale is recorded in the result (the factor Scenario was scaled by).
	Scale float64
	// DatabaseURL is an administrator's (superuser's) URL of an existing
	// database; empty starts a throwaway PostgreSQL cluster.
	DatabaseURL string
	// Replicas is the Agent API replicas behind the balancer (default 2).
	Replicas int
	// Limits are the thresholds (zero: SeedLimits).
	Limits Limits
	// Logger receives the services' logs (nil: discarded).
	Logger *slog.Logger
	// Progress is called once a second with the second just completed.
	Progress func(Second)
	// GatewayAgents is the simulated agents behind the real gateway
	// (default 4), each sending GatewayAgentRate events/s (default 25).
	GatewayAgents    int
	GatewayAgentRate float64
}

// Run starts the cloud side, the virtual load and one real gateway with
// simulated agents, runs the scenario, samples every second, stops it all
// and returns the result with its thresholds checked.
func Run(ctx context.Context, opts Options) (*Result, error) {
	sc := opts.Scenario
	if len(sc.Stages) == 0 {
		return nil, errors.New("scenario: no stages")
	}
	if opts.Limits == (Limits{}) {
		opts.Limits = SeedLimits()
	}
	if opts.Replicas <= 0 {
		opts.Replicas = 2
	}
	if opts.GatewayAgents <= 0 {
		opts.GatewayAgents = 4
	}
	if opts.GatewayAgentRate <= 0 {
		opts.GatewayAgentRate = 25
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key, err := postgres.GenerateContextKey("bench")
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	st, err := stack.Start(ctx, stack.Options{DatabaseURL: opts.DatabaseURL, Replicas: opts.Replicas, PoolSize: 20, Logger: log, ContextKey: key})
	if err != nil {
		return nil, err
	}
	defer st.Close(context.WithoutCancel(ctx))
	super, err := pgxpool.New(ctx, st.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("scenario: connect as administrator: %w", err)
	}
	defer super.Close()
	slug := fmt.Sprintf("bench-%s-%d", strings.ReplaceAll(sc.Name, "_", "-"), time.Now().UnixNano())
	org, err := st.NewOrganization(ctx, "Bench "+sc.Name, slug)
	if err != nil {
		return nil, err
	}

	// The virtual gateways: one per virtual user for ingest, the fleet
	// for the queue.
	nGw := sc.VUs()
	if sc.Work == EnqueueCommand {
		nGw = max(sc.FleetGateways, 1)
	}
	gws, err := provision(ctx, super, org.ID, nGw)
	if err != nil {
		return nil, err
	}

	// One real gateway with simulated agents beside the load: its buffer
	// usage is the buffer_usage threshold's source.
	dir, err := os.MkdirTemp("", "staffcontrol-scenario-")
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	defer os.RemoveAll(dir)
	reg, err := st.RegisterGateway(ctx, org.ID, "BENCH-REAL-1")
	if err != nil {
		return nil, err
	}
	env := st.GatewayEnv(reg, dir, "127.0.0.1:0")
	env["STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL"] = "1s"
	gw, err := stack.StartGateway(ctx, env, gateway.Deps{Logger: log.With("service", "gateway"), Version: "bench"})
	if err != nil {
		return nil, err
	}
	defer func() { _ = gw.Stop(context.WithoutCancel(ctx)) }()

	var iter Iteration
	var fleet *fleetsim.Fleet
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer stopAll()
	switch sc.Work {
	case IngestBatch:
		iter = ingestIteration(st.URL, gws, max(sc.EventsPerBatch, 1), sc.VUs())
	case EnqueueCommand:
		fleet, err = fleetsim.New(fleetsim.Options{BaseURL: st.URL, Gateways: gws, Logger: log.With("service", "fleetsim")})
		if err != nil {
			return nil, fmt.Errorf("scenario: fleet: %w", err)
		}
		bg.Add(1)
		go func() { defer bg.Done(); fleet.Run(runCtx) }()
		if err := waitWelcomed(ctx, fleet, len(gws), time.Minute); err != nil {
			return nil, err
		}
		// The enqueuer's own pool as the platform administrator, sized
		// as a replica's: what a Dashboard API would hold.
		adminURL, err := postgres.WithUser(st.AdminURL, postgres.RoleAdmin, "")
		if err != nil {
			return nil, fmt.Errorf("scenario: %w", err)
		}
		pool, err := postgres.Connect(ctx, adminURL, 20, key)
		if err != nil {
			return nil, fmt.Errorf("scenario: connect as %s: %w", postgres.RoleAdmin, err)
		}
		defer pool.Close()
		q, err := commandqueue.New(pool, commandqueue.Options{}, prometheus.NewRegistry())
		if err != nil {
			return nil, fmt.Errorf("scenario: queue: %w", err)
		}
		iter = enqueueIteration(q, org.ID, gws)
	default:
		return nil, fmt.Errorf("scenario: unknown work %q", sc.Work)
	}

	// The agents behind the real gateway, for the whole run.
	bg.Add(1)
	go func() {
		defer bg.Done()
		_, err := agentsim.Run(runCtx, agentsim.Options{GatewayURL: "http://" + gw.Addr(), EnrolmentSecret: org.EnrolmentSecret,
			Agents: opts.GatewayAgents, Rate: opts.GatewayAgentRate, BatchSize: 25, Logger: log.With("service", "agentsim")})
		if err != nil && runCtx.Err() == nil {
			log.WarnContext(ctx, "scenario: agents behind the real gateway", "err", err)
		}
	}()

	res := &Result{Scenario: sc, Scale: opts.Scale, Replicas: opts.Replicas, LoadBefore: loadavg()}
	first, err := gatherWrites(st)
	if err != nil {
		return nil, err
	}
	res.Started = time.Now()
	rec := NewRecorder(res.Started)
	smp := &sampler{rec: rec, st: st, prev: first, db: super, gw: gw.Registry(), details: "http://" + gw.HealthAddr() + "/health/details",
		client: &http.Client{Timeout: 2 * time.Second}, log: log, progress: opts.Progress}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		_ = lifecycle.Every(sampleCtx, time.Second, false, smp.sample)
	}()

	switch sc.Executor {
	case RampingVUs:
		RunRampingVUs(ctx, rec, sc.Start, sc.Stages, sc.ThinkTime, iter)
	case ConstantArrivalRate, RampingArrivalRate:
		RunArrivalRate(ctx, rec, sc.Start, sc.Stages, sc.PreAllocatedVUs, sc.MaxVUs, iter)
	default:
		stopSampling()
		return nil, fmt.Errorf("scenario: unknown executor %q", sc.Executor)
	}
	res.Elapsed = time.Since(res.Started).Seconds()
	stopSampling()
	<-sampled
	smp.sample(context.WithoutCancel(ctx)) // the last, partial second
	last, err := gatherWrites(st)
	if err != nil {
		return nil, err
	}
	res.LoadAfter = loadavg()
	whole := last.Minus(first)

	n := max(len(smp.seconds), int(math.Ceil(res.Elapsed)))
	res.Seconds = make([]Second, n)
	copy(res.Seconds, smp.seconds)
	res.depthSamples, res.bufferSamples = smp.depthSamples, smp.bufferSamples
	res.summarise(rec, n)
	res.Totals.Writes = whole.Count()
	res.check(opts.Limits, whole.Quantile(0.95), whole.Count())
	res.Notes = notes(sc, opts)
	if fleet != nil {
		fs := fleet.Stats()
		res.Notes = append(res.Notes, fmt.Sprintf("fleet: %d gateways, %d connected at the end, %d commands received, %d redeliveries answered from the ledger", fs.Gateways, fs.Connected, fs.Commands, fs.Duplicates))
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("scenario: interrupted: %w", ctx.Err())
	}
	return res, nil
}

// notes explains the run's choices in its result.
func notes(sc Scenario, opts Options) []string {
	out := []string{
		fmt.Sprintf("one real gateway (in process) with %d simulated agents at %g events/s each uploads beside the load; buffer_usage is its gateway_buffer_usage_ratio", opts.GatewayAgents, opts.GatewayAgentRate),
		"the load generator, the Agent API replicas, the balancer, the gateway and PostgreSQL share this machine's cores",
	}
	if sc.Work == EnqueueCommand {
		out = append(out, "a request here is one Enqueue (group-committed: the concurrent calls share tenant transactions, at most 2 at once, on a pool of 20 connections as the platform administrator; the Dashboard API is not in the stack), timed by the client; write p95 comes from the real gateway's uploads only")
	}
	return out
}

// sampler reads the per-second sources.
type sampler struct {
	rec      *Recorder
	st       *stack.Stack
	prev     stack.Histogram
	db       *pgxpool.Pool
	gw       prometheus.Gatherer
	details  string // the gateway's /health/details
	client   *http.Client
	log      *slog.Logger
	progress func(Second)

	seconds                     []Second
	depthSamples, bufferSamples int
}

// sample fills the second just completed: its write p95 (histogram delta),
// the queue depth and the buffer usage now.
func (s *sampler) sample(ctx context.Context) {
	sec := Second{T: len(s.seconds)}
	if h, err := gatherWrites(s.st); err != nil {
		s.log.WarnContext(ctx, "scenario: sample", "err", err)
	} else {
		d := h.Minus(s.prev)
		s.prev = h
		sec.Writes = d.Count()
		if q := d.Quantile(0.95); !math.IsNaN(q) {
			v := q * 1000
			sec.WriteP95 = &v
		}
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	depth, err := queueDepth(qctx, s.db)
	cancel()
	if err != nil {
		s.log.WarnContext(ctx, "scenario: sample", "err", err)
	} else {
		sec.QueueDepth = depth
		s.depthSamples++
	}
	if v, ok, err := gaugeValue(s.gw, "gateway_buffer_usage_ratio"); err != nil {
		s.log.WarnContext(ctx, "scenario: sample", "err", err)
	} else if ok {
		sec.BufferUsage = v
		s.bufferSamples++
	}
	if data, fs, err := s.bufferDetails(ctx); err != nil {
		s.log.WarnContext(ctx, "scenario: sample", "err", err)
	} else {
		sec.BufferData, sec.BufferFilesystem = &data, &fs
	}
	b := s.rec.second(sec.T)
	sec.VUs, sec.Requests, sec.Failures, sec.Dropped, sec.Events = b.vus, b.requests, b.failures, b.dropped, b.events
	s.seconds = append(s.seconds, sec)
	if s.progress != nil {
		sort.Float64s(b.latencies)
		sec.P50, sec.P95, sec.P99 = ptr(percentile(b.latencies, 50)), ptr(percentile(b.latencies, 95)), ptr(percentile(b.latencies, 99))
		s.progress(sec)
	}
}

// bufferDetails reads the gateway's /health/details: its buffer's bytes ÷
// buffer.max_size and the fullness of the filesystem holding it, the two
// parts whose larger is gateway_buffer_usage_ratio.
func (s *sampler) bufferDetails(ctx context.Context) (data, fs float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.details, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("scenario: gateway details: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("scenario: gateway details: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("scenario: gateway details: %s", resp.Status)
	}
	return parseDetails(io.LimitReader(resp.Body, 1<<20))
}

// parseDetails decodes the buffer part of a gateway's /health/details:
// bytes ÷ max_bytes and the filesystem's fullness, each checked to be a
// ratio.
func parseDetails(r io.Reader) (data, fs float64, err error) {
	var d struct {
		Buffer struct {
			Bytes    int64   `json:"bytes"`
			MaxBytes int64   `json:"max_bytes"`
			FSUsage  float64 `json:"filesystem_usage"`
		} `json:"buffer"`
	}
	if err := json.NewDecoder(r).Decode(&d); err != nil {
		return 0, 0, fmt.Errorf("scenario: gateway details: %w", err)
	}
	b := d.Buffer
	if b.MaxBytes <= 0 || b.Bytes < 0 {
		return 0, 0, fmt.Errorf("scenario: gateway details: buffer bytes %d of max_bytes %d", b.Bytes, b.MaxBytes)
	}
	if !(b.FSUsage >= 0 && b.FSUsage <= 1) {
		return 0, 0, fmt.Errorf("scenario: gateway details: filesystem_usage %g is not a ratio", b.FSUsage)
	}
	return float64(b.Bytes) / float64(b.MaxBytes), b.FSUsage, nil
}

// provision creates n gateways of org with COPY, each with a fresh API key
// stored as internal/cloud/auth stores it (its SHA-256).
func provision(ctx context.Context, db *pgxpool.Pool, org int64, n int) ([]fleetsim.Gateway, error) {
	gws := make([]fleetsim.Gateway, 0, n)
	rows := make([][]any, 0, n)
	for i := range n {
		key, hash, err := auth.NewSecret(auth.PrefixAPIKey)
		if err != nil {
			return nil, fmt.Errorf("scenario: API key: %w", err)
		}
		id := uuid.New()
		gws = append(gws, fleetsim.Gateway{ID: id.String(), Key: key})
		rows = append(rows, []any{id, org, fmt.Sprintf("VIRTUAL-%05d", i), hash, "offline"})
	}
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"gateway_instances"}, []string{"id", "organization_id", "serial", "api_key_hash", "status"},
		pgx.CopyFromRows(rows)); err != nil {
		return nil, fmt.Errorf("scenario: provision %d virtual gateways: %w", n, err)
	}
	return gws, nil
}

// waitWelcomed waits until every simulated gateway has been welcomed.
func waitWelcomed(ctx context.Context, f *fleetsim.Fleet, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for f.Stats().Welcomed < int64(n) {
		if time.Now().After(deadline) {
			return fmt.Errorf("scenario: %d of %d simulated gateways welcomed after %s", f.Stats().Welcomed, n, limit)
		}
		if !wait(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

// ingestIteration POSTs one gzip logs batch as virtual gateway vu (its own
// key, a fresh Idempotency-Key, its next seq numbers).
func ingestIteration(base string, gws []fleetsim.Gateway, events, vus int) Iteration {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = vus + 16
	tr.MaxIdleConnsPerHost = vus + 16
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	seqs := make([]int64, len(gws)) // each VU owns its index
	url := strings.TrimRight(base, "/") + protocol.PathIngestLogs
	return func(ctx context.Context, vu int) Outcome {
		g := gws[vu%len(gws)]
		batch := protocol.LogBatch{GatewayID: g.ID, Events: make([]protocol.Event, events), Drops: []protocol.Drop{}}
		now := time.Now().UTC()
		for i := range batch.Events {
			seqs[vu%len(gws)]++
			batch.Events[i] = virtualEvent(vu, seqs[vu%len(gws)], now.Add(-time.Duration(i)*time.Millisecond))
		}
		body, err := gzipJSON(batch)
		if err != nil {
			return Outcome{Failed: true, Events: events}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return Outcome{Failed: true, Events: events}
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set(protocol.HeaderAPIKey, g.Key)
		req.Header.Set(protocol.HeaderIdempotencyKey, uuid.Must(uuid.NewV7()).String())
		req.Header.Set("X-Gateway-Id", g.ID)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return Outcome{Latency: time.Since(start), Failed: true, Events: events, Interrupted: ctx.Err() != nil}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return Outcome{Latency: time.Since(start), Failed: resp.StatusCode >= 400, Events: events}
	}
}

var (
	processes = []string{"chrome.exe", "EXCEL.EXE", "WINWORD.EXE", "OUTLOOK.EXE", "Teams.exe", "devenv.exe", "explorer.exe", "1cv8.exe"}
	titles    = []string{"Quarterly report.xlsx - Excel", "Inbox - Outlook", "Sprint planning | Microsoft Teams", "Contract draft.docx - Word", "Solution1 - Visual Studio", "Documents"}
	sites     = []string{"https://mail.example.org/inbox", "https://docs.example.com/d/42", "https://news.example.net/", "https://crm.example.org/leads/7"}
	sessions  = []string{protocol.SessionLogin, protocol.SessionLock, protocol.SessionUnlock, protocol.SessionLogout}
)

// virtualEvent is event seq of virtual gateway vu: 60 % windows, 30 %
// sites, 10 % sessions, as the agent simulator sends.
func virtualEvent(vu int, seq int64, at time.Time) protocol.Event {
	d := 1 + seq%300
	recv := at
	e := protocol.Event{EventID: uuid.Must(uuid.NewV7()).String(), Seq: seq, AgentUID: fmt.Sprintf("vg%d-agent%d", vu, seq%10),
		ComputerName: fmt.Sprintf("VG%d-PC-%02d", vu, seq%10), UserSID: fmt.Sprintf("S-1-5-21-1000-%d-%d", vu, seq%10), Datetime: at, ReceivedAt: &recv}
	switch p := seq % 10; {
	case p < 6:
		e.Type, e.ProcessName, e.WindowTitle, e.DurationSeconds = protocol.TypeActiveWindow, processes[seq%int64(len(processes))], titles[seq%int64(len(titles))], &d
	case p < 9:
		e.Type, e.URL, e.Title, e.DurationSeconds = protocol.TypeVisitedSite, sites[seq%int64(len(sites))], "Page title", &d
	default:
		e.Type, e.SessionType = protocol.TypeUserSession, sessions[seq%int64(len(sessions))]
	}
	return e
}

func gzipJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// enqueueIteration enqueues one restart_agent command for the fleet's next
// gateway (round robin), as the organisation's administrator.
func enqueueIteration(q *commandqueue.Queue, org int64, gws []fleetsim.Gateway) Iteration {
	ids := make([]uuid.UUID, len(gws))
	for i, g := range gws {
		ids[i] = uuid.MustParse(g.ID)
	}
	var next atomic.Uint64
	tenant := postgres.Tenant{OrganizationID: org, Role: postgres.AppAdmin, Actor: "bench"}
	return func(ctx context.Context, vu int) Outcome {
		id := ids[(next.Add(1)-1)%uint64(len(ids))]
		start := time.Now()
		_, err := q.Enqueue(ctx, tenant, commandqueue.NewCommand{GatewayID: id, Type: protocol.CommandRestartAgent,
			Payload: json.RawMessage(`{"agent_uid":"bench"}`), CreatedBy: "bench"})
		return Outcome{Latency: time.Since(start), Failed: err != nil, Interrupted: err != nil && ctx.Err() != nil}
	}
}

// loadavg is /proc/loadavg's first three fields ("" where unavailable).
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
