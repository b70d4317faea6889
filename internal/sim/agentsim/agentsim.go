// Package agentsim simulates desktop agents against a gateway: each agent
// registers, then sends realistic event batches (active windows, visited
// sites, sessions) and optionally screenshots over HTTP or gRPC, at a
// bounded rate, for a bounded time or event count. It reports every event
// id's outcome (acknowledged, indeterminate, rejected) so that tests can
// check per id that nothing acknowledged was lost or duplicated.
//
// Every agent first enrols with the organisation's enrolment secret
// (Options.EnrolmentSecret) and then presents its own credential on every
// request, as a real agent does; with Options.CAFile the gateway is reached
// over TLS.
//
// With Options.Control, agents also fetch the gateway's policy, report the
// version they applied and carry out the commands the gateway queues for
// them (see control.go).
//
// Like a real agent, a simulated agent keeps a batch the gateway refused
// with 503/429 (or could not be reached at all) and retries it after
// Retry-After. A request whose outcome is unknown (connection lost mid-way)
// is recorded as indeterminate and not resent.
package agentsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/protocol/agentpb"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// Outcome is what became of the events of one request.
type Outcome int

// Outcomes.
const (
	// Acked: the gateway answered 2xx; the events are committed.
	Acked Outcome = iota
	// Indeterminate: the connection failed mid-request; the events may or
	// may not be committed.
	Indeterminate
	// Rejected: the gateway answered 4xx; the events are not committed.
	Rejected
)

// Options configures Run.
type Options struct {
	// GatewayURL is the gateway's HTTP base URL (http://host:port).
	GatewayURL string
	// GRPCAddr is the gateway's gRPC address (host:port), for Transport grpc.
	GRPCAddr string
	// EnrolmentSecret is the organisation's enrolment secret (from the
	// agent installer); every agent enrols with it first. Required.
	EnrolmentSecret string
	// EnrolWait bounds how long an agent retries enrolment while the
	// gateway cannot enrol yet (503) or is unreachable (default 60 s); the
	// agent then gives up (Result.Enrolled counts those that made it).
	EnrolWait time.Duration
	// CAFile, when set, is a PEM CA bundle: the gateway is reached over TLS
	// (https:// GatewayURL, TLS gRPC) and verified against it.
	CAFile string
	// Transport is "http" (default) or "grpc".
	Transport string
	// Agents is the number of simulated agents (default 1).
	Agents int
	// Rate is events per second per agent; 0 sends as fast as acks come.
	Rate float64
	// RateFunc, when set, overrides Rate: it is read before every batch,
	// so a caller can change the rate during a run (rising steps).
	RateFunc func() float64
	// BatchSize is events per request (default 100).
	BatchSize int
	// ScreenshotEvery uploads a screenshot after every Nth batch (0: none;
	// HTTP only).
	ScreenshotEvery int
	// ScreenshotBytes is the size of a simulated screenshot (default 64 KiB).
	ScreenshotBytes int
	// Duration stops the run after this long (0: until ctx ends).
	Duration time.Duration
	// MaxEvents stops after this many events were generated (0: no limit).
	MaxEvents int64
	// Observe, when set, is called once per request with its event ids and
	// outcome (from many goroutines).
	Observe func(ids []string, o Outcome)
	// ObserveLatency, when set, is called with the acknowledgement latency
	// of every acknowledged event request (from many goroutines).
	ObserveLatency func(time.Duration)
	// Client is the HTTP client (default: 10 s timeout).
	Client *http.Client
	// MaxRetryAfter caps the wait after a 503 (default 5 s).
	MaxRetryAfter time.Duration
	Logger        *slog.Logger
	// TracerProvider, when set, makes each event batch and screenshot a
	// client span (agent.send_batch, agent.send_screenshot) whose W3C
	// traceparent goes on the request (HTTP header, gRPC metadata), as a
	// traced agent would send it: the gateway's collector continues it.
	// nil: no tracing and no header.
	TracerProvider trace.TracerProvider

	// Control turns on the agents' control side (control.go; HTTP, so
	// GatewayURL is required). MaxEvents then ends only the events: agents
	// keep polling until Duration or ctx ends.
	Control bool
	// PolicyInterval is how often an agent fetches the policy (30 s).
	PolicyInterval time.Duration
	// CommandWait is the command long-poll's wait (25 s).
	CommandWait time.Duration
	// HeartbeatInterval is how often an agent sends a heartbeat (30 s).
	HeartbeatInterval time.Duration
	// RestartDelay is how long a simulated restart takes (200 ms).
	RestartDelay time.Duration
	// ObserveControl, when set, is called for every control event (from
	// many goroutines).
	ObserveControl func(ControlEvent)
}

// Result summarises a run.
type Result struct {
	Events        int64         `json:"events"`
	Acked         int64         `json:"acked"`
	Duplicates    int64         `json:"duplicates"`
	Indeterminate int64         `json:"indeterminate"`
	Rejected      int64         `json:"rejected"`
	Refusals      int64         `json:"refusals_503"`
	Screenshots   int64         `json:"screenshots_acked"`
	Requests      int64         `json:"requests"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	// AckRate is acknowledged events per second.
	AckRate float64 `json:"ack_rate"`
	// P50 and P99 are acknowledgement latencies of event requests.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	// Control counts the control side's work (Options.Control).
	Control ControlResult `json:"control"`
	// Enrolled counts agents that obtained a credential.
	Enrolled int64 `json:"enrolled"`
}

// String formats a one-line summary.
func (r Result) String() string {
	return fmt.Sprintf("events=%d acked=%d duplicates=%d indeterminate=%d rejected=%d refusals=%d screenshots=%d elapsed=%s rate=%.0f/s p50=%s p99=%s",
		r.Events, r.Acked, r.Duplicates, r.Indeterminate, r.Rejected, r.Refusals, r.Screenshots, r.Elapsed.Round(time.Millisecond),
		r.AckRate, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond))
}

// maxLatencySamples bounds the memory kept for latency percentiles.
const maxLatencySamples = 1 << 20

type run struct {
	id        string // distinguishes agents of concurrent runs
	opts      Options
	log       *slog.Logger
	res       Result
	generated atomic.Int64
	mu        sync.Mutex
	lat       []time.Duration
	latSeen   int64
	ctl       controlCounters
	tls       *tls.Config
	enrolled  atomic.Int64
}

// tracerName names the simulator's spans' instrumentation scope.
const tracerName = "github.com/staffcontrol/staffcontrol/internal/sim/agentsim"

// Run simulates the agents until Duration, MaxEvents or ctx ends.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Agents <= 0 {
		opts.Agents = 1
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 100
	}
	if opts.ScreenshotBytes <= 0 {
		opts.ScreenshotBytes = 64 << 10
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = 5 * time.Second
	}
	opts.TracerProvider = tracing.OrNoop(opts.TracerProvider)
	if opts.EnrolmentSecret == "" {
		return Result{}, errors.New("agentsim: the enrolment secret is required (agents enrol before sending)")
	}
	if opts.EnrolWait <= 0 {
		opts.EnrolWait = time.Minute
	}
	var tlsConf *tls.Config
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return Result{}, fmt.Errorf("agentsim: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return Result{}, fmt.Errorf("agentsim: CA file %s holds no PEM certificate", opts.CAFile)
		}
		tlsConf = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if opts.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = opts.Agents
		tr.TLSClientConfig = tlsConf
		opts.Client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	switch opts.Transport {
	case "", "http":
		opts.Transport = "http"
		if opts.GatewayURL == "" {
			return Result{}, errors.New("agentsim: gateway URL is required")
		}
		opts.GatewayURL = strings.TrimRight(opts.GatewayURL, "/")
	case "grpc":
		if opts.GRPCAddr == "" {
			return Result{}, errors.New("agentsim: gRPC address is required")
		}
	default:
		return Result{}, fmt.Errorf("agentsim: transport must be http or grpc, not %q", opts.Transport)
	}
	if opts.Control {
		if opts.GatewayURL == "" {
			return Result{}, errors.New("agentsim: the control side needs the gateway URL")
		}
		opts.GatewayURL = strings.TrimRight(opts.GatewayURL, "/")
		if opts.PolicyInterval <= 0 {
			opts.PolicyInterval = 30 * time.Second
		}
		if opts.CommandWait <= 0 {
			opts.CommandWait = 25 * time.Second
		}
		if opts.HeartbeatInterval <= 0 {
			opts.HeartbeatInterval = 30 * time.Second
		}
		if opts.RestartDelay <= 0 {
			opts.RestartDelay = 200 * time.Millisecond
		}
	}
	r := &run{id: uuid.NewString()[:8], opts: opts, log: opts.Logger, tls: tlsConf}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	var conn *grpc.ClientConn
	if opts.Transport == "grpc" {
		tc := insecure.NewCredentials()
		if tlsConf != nil {
			tc = credentials.NewTLS(tlsConf)
		}
		c, err := grpc.NewClient(opts.GRPCAddr, grpc.WithTransportCredentials(tc))
		if err != nil {
			return Result{}, fmt.Errorf("agentsim: grpc client: %w", err)
		}
		conn = c
		defer conn.Close()
	}
	start := time.Now()
	var ctlClient *http.Client
	if opts.Control {
		ctlClient = r.controlClient()
	}
	var wg sync.WaitGroup
	for i := range opts.Agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := newAgent(i, r, conn)
			if !a.enroll(ctx) {
				return
			}
			if opts.Control {
				a.ctl = newAgentCtl(ctx)
				wg.Add(1)
				go func() {
					defer wg.Done()
					a.controlLoop(ctx, ctlClient)
				}()
			}
			a.loop(ctx)
		}()
	}
	wg.Wait()
	r.res.Control = r.ctl.result()
	r.res.Enrolled = r.enrolled.Load()
	r.res.Elapsed = time.Since(start)
	r.res.Events = r.generated.Load()
	if s := r.res.Elapsed.Seconds(); s > 0 {
		r.res.AckRate = float64(r.res.Acked) / s
	}
	r.res.P50, r.res.P99 = r.percentile(0.50), r.percentile(0.99)
	return r.res, nil
}

func (r *run) record(ids []string, o Outcome, latency time.Duration, dups int, screenshot bool) {
	r.mu.Lock()
	switch o {
	case Acked:
		r.res.Acked += int64(len(ids))
		r.res.Duplicates += int64(dups)
		if screenshot {
			r.res.Screenshots++
		} else {
			if r.opts.ObserveLatency != nil {
				r.opts.ObserveLatency(latency)
			}
			r.latSeen++
			if len(r.lat) < maxLatencySamples {
				r.lat = append(r.lat, latency)
			} else if j := rand.Int64N(r.latSeen); j < maxLatencySamples {
				r.lat[j] = latency
			}
		}
	case Indeterminate:
		r.res.Indeterminate += int64(len(ids))
	case Rejected:
		r.res.Rejected += int64(len(ids))
	}
	r.mu.Unlock()
	if r.opts.Observe != nil {
		r.opts.Observe(ids, o)
	}
}

func (r *run) percentile(p float64) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lat) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), r.lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

type agent struct {
	r        *run
	uid      string
	computer string
	sid      string
	rng      *rand.Rand
	grpc     agentpb.CollectorClient
	batches  int
	voc      vocabulary
	ctl      *agentCtl // nil without Options.Control
	cred     string    // the agent's credential, from enroll
}

func newAgent(i int, r *run, conn *grpc.ClientConn) *agent {
	a := &agent{r: r, uid: fmt.Sprintf("sim-%s-%04d", r.id, i), computer: fmt.Sprintf("SIM-PC-%s-%04d", r.id, i),
		sid: fmt.Sprintf("S-1-5-21-1004336348-1177238915-682003330-%d", 1000+i),
		rng: rand.New(rand.NewPCG(uint64(i)+1, uint64(time.Now().UnixNano()))), voc: newVocabulary()}
	if conn != nil {
		a.grpc = agentpb.NewCollectorClient(conn)
	}
	return a
}

// reserve takes up to n events from the MaxEvents budget.
func (r *run) reserve(n int) int {
	if r.opts.MaxEvents <= 0 {
		r.generated.Add(int64(n))
		return n
	}
	for {
		cur := r.generated.Load()
		left := r.opts.MaxEvents - cur
		if left <= 0 {
			return 0
		}
		take := min(int64(n), left)
		if r.generated.CompareAndSwap(cur, cur+take) {
			return int(take)
		}
	}
}

func (a *agent) loop(ctx context.Context) {
	a.register(ctx)
	interval := a.r.interval()
	next := time.Now()
	if interval > 0 {
		// Agents are not synchronised: start each at a random phase.
		next = next.Add(time.Duration(a.rng.Int64N(int64(interval))))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
	}
	for ctx.Err() == nil {
		n := a.r.reserve(a.r.opts.BatchSize)
		if n == 0 {
			return
		}
		events := a.events(n)
		a.deliver(ctx, events)
		a.batches++
		if a.r.opts.ScreenshotEvery > 0 && a.batches%a.r.opts.ScreenshotEvery == 0 && a.r.opts.Transport == "http" && ctx.Err() == nil {
			a.screenshot(ctx)
		}
		if a.r.opts.RateFunc != nil {
			if interval = a.r.interval(); interval == 0 {
				next = time.Now()
			}
		}
		if interval > 0 {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			} else {
				next = time.Now()
			}
		}
	}
}

// interval is the pause between an agent's batches at the current rate
// (0: as fast as acks come).
func (r *run) interval() time.Duration {
	rate := r.opts.Rate
	if r.opts.RateFunc != nil {
		rate = r.opts.RateFunc()
	}
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(r.opts.BatchSize) / rate * float64(time.Second))
}

// SampleEvents returns n events made as a simulated agent makes them (the
// same vocabulary, mix and field sizes), seeded, for benchmarks that write
// identical rows another way.
func SampleEvents(seed uint64, n int) []protocol.Event {
	a := newAgent(0, &run{id: fmt.Sprintf("%08x", uint32(seed))}, nil)
	a.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return a.events(n)
}

// vocabulary is what simulated events are made of.
type vocabulary struct {
	processes, titles, sites, sessions []string
}

func newVocabulary() vocabulary {
	return vocabulary{
		processes: []string{"chrome.exe", "EXCEL.EXE", "WINWORD.EXE", "OUTLOOK.EXE", "Teams.exe", "devenv.exe", "explorer.exe", "1cv8.exe"},
		titles:    []string{"Quarterly report.xlsx - Excel", "Inbox - Outlook", "Sprint planning | Microsoft Teams", "Contract draft.docx - Word", "Solution1 - Visual Studio", "Documents"},
		sites:     []string{"https://mail.example.org/inbox", "https://docs.example.com/d/42", "https://news.example.net/", "https://crm.example.org/leads/7", "https://www.youtube.com/watch?v=abc"},
		sessions:  []string{protocol.SessionLogin, protocol.SessionLock, protocol.SessionUnlock, protocol.SessionLogout},
	}
}

func (a *agent) events(n int) []protocol.Event {
	now := time.Now().UTC()
	out := make([]protocol.Event, n)
	for i := range out {
		d := int64(1 + a.rng.IntN(300))
		e := protocol.Event{EventID: uuid.Must(uuid.NewV7()).String(), UserSID: a.sid, AgentUID: a.uid, ComputerName: a.computer,
			Datetime: now.Add(-time.Duration(a.rng.IntN(60_000)) * time.Millisecond)}
		switch p := a.rng.IntN(10); {
		case p < 6:
			e.Type, e.ProcessName, e.WindowTitle, e.DurationSeconds = protocol.TypeActiveWindow, a.voc.processes[a.rng.IntN(len(a.voc.processes))], a.voc.titles[a.rng.IntN(len(a.voc.titles))], &d
		case p < 9:
			e.Type, e.URL, e.Title, e.DurationSeconds = protocol.TypeVisitedSite, a.voc.sites[a.rng.IntN(len(a.voc.sites))], "Page title", &d
		default:
			e.Type, e.SessionType = protocol.TypeUserSession, a.voc.sessions[a.rng.IntN(len(a.voc.sessions))]
		}
		out[i] = e
	}
	return out
}

func ids(events []protocol.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.EventID
	}
	return out
}

// enroll obtains the agent's credential with the enrolment secret,
// retrying while the gateway is unreachable or cannot enrol yet (503); it
// returns false when ctx ended or the gateway refused the secret.
func (a *agent) enroll(ctx context.Context) bool {
	req := protocol.AgentEnrollRequest{EnrolmentSecret: a.r.opts.EnrolmentSecret, AgentUID: a.uid, ComputerName: a.computer,
		AgentVersion: "sim-2.0", OSVersion: "Windows 11"}
	deadline := time.Now().Add(a.r.opts.EnrolWait)
	for wait := 50 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 2*time.Second) {
		cred, retry, err := a.enrollOnce(ctx, req)
		if err == nil {
			a.cred = cred
			a.r.enrolled.Add(1)
			return true
		}
		if !retry {
			a.r.log.Error("agent: enrolment refused", "agent", a.uid, "err", err)
			return false
		}
		if time.Now().After(deadline) {
			a.r.log.Error("agent: gave up enrolling", "agent", a.uid, "after", a.r.opts.EnrolWait.String(), "err", err)
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return false
}

func (a *agent) enrollOnce(ctx context.Context, req protocol.AgentEnrollRequest) (cred string, retry bool, err error) {
	if a.grpc != nil {
		resp, err := a.grpc.Enroll(ctx, &agentpb.EnrollRequest{EnrolmentSecret: req.EnrolmentSecret, AgentUid: req.AgentUID,
			ComputerName: req.ComputerName, AgentVersion: req.AgentVersion, OsVersion: req.OSVersion})
		if err != nil {
			c := status.Code(err)
			return "", c == codes.Unavailable || c == codes.DeadlineExceeded, err
		}
		return resp.GetCredential(), false, nil
	}
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, a.r.opts.GatewayURL+protocol.PathAgentEnroll, bytes.NewReader(body))
	if err != nil {
		return "", false, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := a.r.opts.Client.Do(hr)
	if err != nil {
		return "", true, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated {
		return "", resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests,
			fmt.Errorf("enrol: %d %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var out protocol.AgentEnrollResponse
	if err := json.Unmarshal(raw, &out); err != nil || out.Credential == "" {
		return "", false, fmt.Errorf("enrol: bad answer %s", raw)
	}
	return out.Credential, false, nil
}

// authorize sets the agent's credential on an HTTP request.
func (a *agent) authorize(req *http.Request) {
	req.Header.Set(protocol.HeaderAuthorization, "Bearer "+a.cred)
}

// grpcContext carries the agent's credential in a call's metadata.
func (a *agent) grpcContext(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, protocol.GRPCAuthorizationKey, "Bearer "+a.cred)
}

func (a *agent) register(ctx context.Context) {
	reg := a.registration()
	if a.grpc != nil && a.ctl == nil {
		_, _ = a.grpc.Register(a.grpcContext(ctx), &agentpb.AgentRegistration{AgentUid: reg.AgentUID, ComputerName: reg.ComputerName, UserSid: reg.UserSID, AgentVersion: reg.AgentVersion})
		return
	}
	a.postJSON(ctx, protocol.PathAgentRegister, reg)
}

// registration is the agent's state as registration and heartbeats report
// it (with the policy version it runs, when it has a control side).
func (a *agent) registration() protocol.AgentRegistration {
	reg := protocol.AgentRegistration{AgentUID: a.uid, ComputerName: a.computer, UserSID: a.sid, AgentVersion: "sim-2.0", OSVersion: "Windows 11"}
	if a.ctl != nil {
		reg.PolicyVersion = *a.ctl.version.Load()
	}
	return reg
}

// postJSON posts v as JSON to the gateway's path with the agent's
// credential, best effort: the answer is read and dropped.
func (a *agent) postJSON(ctx context.Context, path string, v any) {
	body, _ := json.Marshal(v)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.r.opts.GatewayURL+path, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	a.authorize(req)
	if resp, err := a.r.opts.Client.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// refused counts a refusal (503 or 429) and waits its Retry-After, capped
// at MaxRetryAfter, or until ctx ends.
func (a *agent) refused(ctx context.Context, retry time.Duration) {
	a.r.mu.Lock()
	a.r.res.Refusals++
	a.r.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(min(retry, a.r.opts.MaxRetryAfter)):
	}
}

// begin returns the context of one request (waiting while the agent
// restarts); end follows the request.
func (a *agent) begin(ctx context.Context) (context.Context, bool) {
	if a.ctl == nil {
		return ctx, ctx.Err() == nil
	}
	return a.ctl.begin(ctx)
}

func (a *agent) end() {
	if a.ctl != nil {
		a.ctl.end()
	}
}

// deliver sends one batch until it is acknowledged, rejected, or its outcome
// becomes unknown; refusals and unreachable gateways are retried.
func (a *agent) deliver(ctx context.Context, events []protocol.Event) {
	ctx, span := a.r.opts.TracerProvider.Tracer(tracerName).Start(ctx, "agent.send_batch", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.Int(tracing.AttrEvents, len(events))))
	defer span.End()
	list := ids(events)
	var body []byte
	if a.grpc == nil {
		body, _ = json.Marshal(protocol.EventBatch{AgentUID: a.uid, ComputerName: a.computer, Events: events})
	}
	for ctx.Err() == nil {
		a.r.mu.Lock()
		a.r.res.Requests++
		a.r.mu.Unlock()
		start := time.Now()
		reqCtx, ok := a.begin(ctx)
		if !ok {
			return
		}
		var o Outcome
		var retry time.Duration
		var dups int
		if a.grpc != nil {
			o, retry, dups = a.sendGRPC(reqCtx, events)
		} else {
			o, retry, dups = a.sendHTTP(reqCtx, protocol.PathAgentEvents, "application/json", body)
		}
		a.end()
		if o == Indeterminate && ctx.Err() == nil && reqCtx.Err() != nil {
			// Dropped by a forced restart: the agent kept the batch and
			// resends it, with the same ids, once it is back.
			continue
		}
		if retry > 0 {
			a.refused(ctx, retry)
			continue
		}
		if ctx.Err() != nil && o == Indeterminate {
			// Cancelled by the run's own deadline: still unknown.
			a.r.record(list, Indeterminate, 0, 0, false)
			return
		}
		a.r.record(list, o, time.Since(start), dups, false)
		return
	}
	// Never sent successfully and the run ended: the agent still holds them.
}

// sendHTTP posts one body. retry > 0 means "not accepted, try again".
func (a *agent) sendHTTP(ctx context.Context, path, ctype string, body []byte) (Outcome, time.Duration, int) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.r.opts.GatewayURL+path, bytes.NewReader(body))
	if err != nil {
		return Rejected, 0, 0
	}
	req.Header.Set("Content-Type", ctype)
	if tp := tracing.Traceparent(ctx); tp != "" {
		req.Header.Set(tracing.Header, tp)
	}
	a.authorize(req)
	resp, err := a.r.opts.Client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) && ctx.Err() == nil {
			// Never reached the gateway: keep the batch and retry.
			return Indeterminate, 100 * time.Millisecond, 0
		}
		return Indeterminate, 0, 0
	}
	raw, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
		ra, _ := strconv.Atoi(resp.Header.Get(protocol.HeaderRetryAfter))
		return Rejected, max(time.Duration(ra)*time.Second, 50*time.Millisecond), 0
	case resp.StatusCode/100 == 2:
		if rerr != nil {
			return Indeterminate, 0, 0
		}
		var ack protocol.EventBatchResponse
		if err := json.Unmarshal(raw, &ack); err != nil {
			return Indeterminate, 0, 0
		}
		return Acked, 0, ack.Duplicates
	case resp.StatusCode/100 == 4:
		a.r.log.Warn("gateway rejected a request", "status", resp.StatusCode, "body", strings.TrimSpace(string(raw)))
		return Rejected, 0, 0
	default:
		return Indeterminate, 0, 0
	}
}

func (a *agent) sendGRPC(ctx context.Context, events []protocol.Event) (Outcome, time.Duration, int) {
	msg := &agentpb.EventBatch{AgentUid: a.uid, ComputerName: a.computer, Events: make([]*agentpb.Event, len(events))}
	for i, e := range events {
		p := &agentpb.Event{EventId: e.EventID, Type: e.Type, AgentUid: e.AgentUID, ComputerName: e.ComputerName, UserSid: e.UserSID,
			Datetime: timestamppb.New(e.Datetime), DurationSeconds: e.DurationSeconds, WindowTitle: e.WindowTitle,
			ProcessName: e.ProcessName, Url: e.URL, Title: e.Title, SessionType: e.SessionType}
		msg.Events[i] = p
	}
	if tp := tracing.Traceparent(ctx); tp != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, tracing.Header, tp)
	}
	stream, err := a.grpc.StreamEvents(a.grpcContext(ctx))
	if err != nil {
		return Indeterminate, 0, 0
	}
	if err := stream.Send(msg); err != nil && err != io.EOF {
		return Indeterminate, 0, 0
	}
	resp, err := stream.CloseAndRecv()
	if err == nil {
		return Acked, 0, int(resp.GetDuplicates())
	}
	st := status.Convert(err)
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return Rejected, max(ri.GetRetryDelay().AsDuration(), 50*time.Millisecond), 0
		}
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.ResourceExhausted, codes.Unauthenticated, codes.PermissionDenied:
		a.r.log.Warn("gateway rejected a stream", "err", err)
		return Rejected, 0, 0
	}
	return Indeterminate, 0, 0
}

// screenshot uploads one simulated PNG, retrying refusals like events.
func (a *agent) screenshot(ctx context.Context) {
	img := make([]byte, a.r.opts.ScreenshotBytes)
	copy(img, "\x89PNG\r\n\x1a\n")
	for i := 8; i < len(img); i++ {
		img[i] = byte(a.rng.IntN(256))
	}
	sum := sha256.Sum256(img)
	id := uuid.Must(uuid.NewV7()).String()
	if a.r.reserve(1) == 0 {
		return
	}
	meta := protocol.Event{EventID: id, Type: protocol.TypeScreenshot, AgentUID: a.uid, ComputerName: a.computer, UserSID: a.sid,
		Datetime: time.Now().UTC(), Screenshot: &protocol.Screenshot{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(img)), ContentType: "image/png", Width: 1920, Height: 1080}}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="`+protocol.CollectorMetadataPart+`"`)
	h.Set("Content-Type", "application/json")
	pw, _ := mw.CreatePart(h)
	json.NewEncoder(pw).Encode(meta)
	fw, _ := mw.CreateFormFile(protocol.CollectorImagePart, id+".png")
	fw.Write(img)
	mw.Close()
	ctx, span := a.r.opts.TracerProvider.Tracer(tracerName).Start(ctx, "agent.send_screenshot", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	for ctx.Err() == nil {
		start := time.Now()
		reqCtx, ok := a.begin(ctx)
		if !ok {
			return
		}
		o, retry, _ := a.sendHTTP(reqCtx, protocol.PathAgentScreenshot, mw.FormDataContentType(), body.Bytes())
		a.end()
		if o == Indeterminate && ctx.Err() == nil && reqCtx.Err() != nil {
			continue // dropped by a forced restart: resent once back
		}
		if retry > 0 {
			a.refused(ctx, retry)
			continue
		}
		a.r.record([]string{id}, o, time.Since(start), 0, true)
		return
	}
}
