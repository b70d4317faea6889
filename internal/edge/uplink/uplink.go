// Package uplink uploads the gateway's buffer to the cloud Agent API: one
// loop per stream (logs, screenshots, device events) forms batches bounded by
// count, bytes and time, sends them gzip-compressed (screenshots as
// multipart) with the API key and the batch's persisted idempotency token,
// and deletes the rows only after a 2xx. Failures retry forever with capped
// exponential backoff and full jitter; Retry-After is honoured; 413 halves the
// batch; 401/403 pause uploads and raise an alert.
//
// No batch blocks a stream forever. A batch the cloud refuses as a whole
// (400, 413, 422 validation) is bisected; a single event it still refuses is
// set aside as a dead letter in the buffer (rejected_by_cloud). A batch that
// keeps failing with a server error (5xx) IsolateAfterFailures times in a row while
// the cloud is otherwise healthy (another upload succeeded since its first
// failure, or the authenticated ping answers 200) is split the same way, and
// a single event that still fails IsolateAfterFailures times is set aside
// (persistent_failure). During a whole-cloud outage the health check fails
// and batches are only retried, as before.
package uplink

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/backoff"
	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// Config is the uplink's tunables: the uplink.* keys of the gateway's
// configuration (internal/edge/config composes it), declared here once.
// Zero fields take the Default* values.
type Config struct {
	// BatchMaxEvents and BatchMaxBytes bound a logs or device-events batch
	// (uplink.batch_max_events, uplink.batch_max_bytes).
	BatchMaxEvents int
	BatchMaxBytes  int64
	// ScreenshotBatchMaxEvents and ScreenshotBatchMaxBytes bound a
	// screenshot batch.
	ScreenshotBatchMaxEvents int
	ScreenshotBatchMaxBytes  int64
	// FlushInterval is the longest an event waits for a batch to fill.
	FlushInterval time.Duration
	// BackoffInitial and BackoffMax are the backoff.Policy of retries
	// (1 s, 16 s): full jitter, a random delay in (0, min(BackoffMax,
	// BackoffInitial·2^attempt)].
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// AuthRetryInterval is how long uploads pause after 401/403.
	AuthRetryInterval time.Duration
	// Parallel is the number of batches of one stream in flight at once
	// (default 2): one is encoded, sent and acknowledged while the next is
	// claimed.
	Parallel int
	// IsolateAfterFailures is how many consecutive server errors (5xx) of
	// one batch start its isolation (default 5): when the cloud is
	// otherwise healthy, the batch is split and a single event that fails
	// this many times is set aside as a dead letter.
	IsolateAfterFailures int
}

// Options configures an Uplink: its Config and what it is given.
// ServerURL and APIKey (or KeyFunc) are required.
type Options struct {
	Config
	// ServerURL is the Agent API base URL (server.url).
	ServerURL string
	// APIKey authenticates the gateway.
	APIKey string
	// KeyFunc, when set, returns the current API key for each request and
	// takes precedence over APIKey (the key can be rotated while running).
	KeyFunc func() string
	// GatewayID is sent in every batch.
	GatewayID string
	// Client sends requests (cloudclient.NewHTTPClient builds one with the
	// TLS files); nil builds one with a 60 s timeout.
	Client *http.Client
	// RetryAfterMax caps a server's Retry-After (which wins over a shorter
	// backoff delay).
	RetryAfterMax time.Duration
	// Logger and Registerer may be nil.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// TracerProvider traces each upload attempt (a span continuing the
	// first traced agent batch among the batch's events, linking the
	// others; its traceparent goes on the request); nil: no tracing.
	TracerProvider trace.TracerProvider
}

// Defaults for zero Options fields.
const (
	DefaultMaxEvents          = 1000
	DefaultMaxBytes           = 4 << 20
	DefaultMaxScreenshots     = 16
	DefaultMaxScreenshotBytes = 16 << 20
	DefaultFlushInterval      = 30 * time.Second
	DefaultBackoffInitial     = time.Second
	DefaultBackoffMax         = 16 * time.Second
	DefaultAuthRetryInterval  = time.Minute
	DefaultRetryAfterMax      = 5 * time.Minute
	DefaultParallel           = 2
	DefaultIsolateAfter       = 5
)

// Status is the uplink's state for /health/details.
type Status struct {
	// RateEventsPerSecond is the acknowledged-event rate over the last 10 s.
	RateEventsPerSecond float64 `json:"rate_events_per_second"`
	// UploadedEvents counts events acknowledged since start.
	UploadedEvents int64     `json:"uploaded_events"`
	LastSuccessAt  time.Time `json:"last_success_at,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	LastErrorAt    time.Time `json:"last_error_at,omitzero"`
	// Paused is "unauthorized" while uploads pause after 401/403.
	Paused string `json:"paused,omitempty"`
	// Backoff is the current retry delay of each stream in seconds.
	Backoff map[string]float64 `json:"backoff_seconds"`
}

type ackSample struct {
	at time.Time
	n  int
}

// Uplink uploads a buffer. It is a lifecycle.Service (Start runs the
// upload loops, Stop ends them); Run is the same work as a blocking call.
// Run it once, either way.
type Uplink struct {
	loop  *lifecycle.Loop
	buf   *buffer.Buffer
	opts  Options
	cloud *cloudclient.Client
	pace  backoff.Policy
	log   *slog.Logger
	m     *metrics

	// gz keeps gzip writers between batches and raw the buffers their
	// JSON is built in: channels, not sync.Pools, because a collection
	// empties a sync.Pool, and with the gateway's small heap collections
	// come several times a second, so each batch allocated a new
	// compressor (some 0.7 MB) and buffer, which made collections more
	// frequent still (issue 17).
	gz     chan *gzip.Writer
	raw    chan *bytes.Buffer
	tracer trace.Tracer

	mu        sync.Mutex
	samples   []ackSample
	uploaded  int64
	lastOK    time.Time
	lastErr   string
	lastErrAt time.Time
	backoff   map[string]float64
	paused    atomic.Bool
	// fails tracks the consecutive server errors of each failing batch;
	// suspects maps a batch split off a persistently failing one to the
	// time its family first failed (see isolate).
	fails    map[string]*failTrack
	suspects map[string]time.Time
}

// failTrack is the server-error history of one batch.
type failTrack struct {
	n     int
	first time.Time
}

// New returns an Uplink for buf.
func New(buf *buffer.Buffer, opts Options) (*Uplink, error) {
	if opts.ServerURL == "" {
		return nil, errors.New("uplink: server URL is required")
	}
	opts.ServerURL = strings.TrimRight(opts.ServerURL, "/")
	if opts.KeyFunc == nil {
		if opts.APIKey == "" {
			return nil, errors.New("uplink: API key is required")
		}
		key := opts.APIKey
		opts.KeyFunc = func() string { return key }
	}
	if opts.Client == nil {
		opts.Client = cloudclient.HTTPClient(nil, 60*time.Second)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opts.BatchMaxEvents, DefaultMaxEvents)
	def64(&opts.BatchMaxBytes, DefaultMaxBytes)
	def(&opts.ScreenshotBatchMaxEvents, DefaultMaxScreenshots)
	def64(&opts.ScreenshotBatchMaxBytes, DefaultMaxScreenshotBytes)
	defD(&opts.FlushInterval, DefaultFlushInterval)
	defD(&opts.BackoffInitial, DefaultBackoffInitial)
	defD(&opts.BackoffMax, DefaultBackoffMax)
	defD(&opts.AuthRetryInterval, DefaultAuthRetryInterval)
	defD(&opts.RetryAfterMax, DefaultRetryAfterMax)
	def(&opts.Parallel, DefaultParallel)
	def(&opts.IsolateAfterFailures, DefaultIsolateAfter)
	u := &Uplink{buf: buf, opts: opts, log: opts.Logger, backoff: map[string]float64{},
		cloud: cloudclient.New(cloudclient.Options{BaseURL: opts.ServerURL, APIKey: opts.KeyFunc, GatewayID: opts.GatewayID, HTTP: opts.Client}),
		pace:  backoff.Policy{Initial: opts.BackoffInitial, Max: opts.BackoffMax},
		fails: map[string]*failTrack{}, suspects: map[string]time.Time{},
		tracer: tracing.OrNoop(opts.TracerProvider).Tracer("github.com/staffcontrol/staffcontrol/internal/edge/uplink")}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	// One writer and buffer per batch in flight (Parallel per stream).
	u.gz = make(chan *gzip.Writer, opts.Parallel*len(buffer.Streams()))
	u.raw = make(chan *bytes.Buffer, opts.Parallel*len(buffer.Streams()))
	u.m = newMetrics(opts.Registerer, u)
	u.loop = lifecycle.NewLoop("uplink", u.log, u.Run)
	return u, nil
}

// Start starts uploading in the background; it returns at once.
func (u *Uplink) Start(ctx context.Context) error { return u.loop.Start(ctx) }

// Stop ends the uploads and waits for them, or for ctx. A batch in flight
// stays claimed and is resent, under the same token, after a restart.
func (u *Uplink) Stop(ctx context.Context) error { return u.loop.Stop(ctx) }

// Run uploads until ctx is done. A batch in flight when ctx ends stays
// claimed and is resent, under the same token, by the next Run.
func (u *Uplink) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range buffer.Streams() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.runStream(ctx, s)
		}()
	}
	wg.Wait()
	return nil
}

func (u *Uplink) limits(s buffer.Stream) (int, int64) {
	if s == buffer.StreamScreenshots {
		return u.opts.ScreenshotBatchMaxEvents, u.opts.ScreenshotBatchMaxBytes
	}
	return u.opts.BatchMaxEvents, u.opts.BatchMaxBytes
}

// outcome of one send.
type outcome int

const (
	outOK outcome = iota
	outRetry
	outServerError // 5xx: retried; isolated when it persists while the cloud is healthy
	outTooLarge
	outReform  // 422 idempotency_key_reused: resend the rows under a new token
	outInvalid // 400: the cloud refuses the content
	outUnauthorized
)

// streamState is shared by the workers of one stream.
type streamState struct {
	mu       sync.Mutex
	limit    int
	inflight map[string]bool
}

func (u *Uplink) runStream(ctx context.Context, s buffer.Stream) {
	maxEvents, _ := u.limits(s)
	st := &streamState{limit: maxEvents, inflight: map[string]bool{}}
	var wg sync.WaitGroup
	for range u.opts.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.worker(ctx, s, st)
		}()
	}
	wg.Wait()
}

// next returns the batch a worker sends next: the oldest pending batch no
// other worker is sending, else a new claim when one is due. The returned
// batch is marked in flight.
func (u *Uplink) next(ctx context.Context, s buffer.Stream, st *streamState, backlog bool) (*buffer.Batch, time.Duration, error) {
	_, maxBytes := u.limits(s)
	st.mu.Lock()
	defer st.mu.Unlock()
	bt, err := u.buf.PendingBatch(ctx, s, st.inflight)
	if err != nil {
		return nil, 0, err
	}
	if bt == nil {
		ready, wait := u.ready(ctx, s, st.limit, maxBytes, backlog)
		if !ready {
			return nil, wait, nil
		}
		bt, err = u.buf.Claim(ctx, s, st.limit, maxBytes, s == buffer.StreamLogs)
		if err != nil {
			return nil, 0, err
		}
		if bt == nil {
			return nil, u.opts.FlushInterval, nil
		}
	}
	st.inflight[bt.Token] = true
	return bt, 0, nil
}

func (u *Uplink) worker(ctx context.Context, s buffer.Stream, st *streamState) {
	maxEvents, _ := u.limits(s)
	attempt := 0
	backlog := false
	for ctx.Err() == nil {
		bt, wait, err := u.next(ctx, s, st, backlog)
		if err != nil {
			u.fail(s, err)
			backoff.Sleep(ctx, u.delay(&attempt, 0))
			continue
		}
		if bt == nil {
			backlog = false
			u.wait(ctx, s, wait)
			continue
		}
		u.process(ctx, s, st, bt, maxEvents, &attempt, &backlog)
		st.mu.Lock()
		delete(st.inflight, bt.Token)
		st.mu.Unlock()
	}
}

// process sends one batch and acts on the outcome.
func (u *Uplink) process(ctx context.Context, s buffer.Stream, st *streamState, bt *buffer.Batch, maxEvents int, attempt *int, backlog *bool) {
	out, retryAfter, err := u.send(ctx, bt)
	if ctx.Err() != nil {
		return
	}
	switch out {
	case outOK, outTooLarge, outInvalid, outReform:
		u.forgetTrack(bt.Token)
	}
	switch out {
	case outOK:
		// A 2xx proves the key is accepted: the pause ends before the rows
		// are acknowledged, so nothing sees the backlog gone while the
		// gateway still reports itself paused.
		u.resume()
		if err := u.buf.Ack(ctx, bt); err != nil {
			// The rows stay claimed; the batch is resent under its token
			// and the server answers from its idempotency store.
			u.fail(s, err)
			backoff.Sleep(ctx, u.delay(attempt, 0))
			return
		}
		u.succeeded(s, bt)
		*attempt = 0
		u.setBackoff(s, 0)
		st.mu.Lock()
		*backlog = len(bt.Events) >= st.limit
		if st.limit < maxEvents {
			st.limit = min(maxEvents, st.limit*2)
		}
		st.mu.Unlock()
	case outTooLarge, outInvalid:
		if len(bt.Events) <= 1 {
			if errors.Is(err, os.ErrNotExist) {
				// A screenshot whose image vanished: nothing to replay.
				u.log.Error("cannot deliver a single event; dropping it", "stream", s, "batch", bt.Token,
					"reason", protocol.DropMissingFile, "err", err)
				if rerr := u.buf.Reject(ctx, bt, protocol.DropMissingFile); rerr != nil {
					u.fail(s, rerr)
				}
				return
			}
			// The cloud refuses this event for good: set it aside.
			if rerr := u.buf.DeadLetter(ctx, bt, protocol.DropRejected, err.Error()); rerr != nil {
				u.fail(s, rerr)
				backoff.Sleep(ctx, u.delay(attempt, 0))
			}
			return
		}
		st.mu.Lock()
		st.limit = max(1, len(bt.Events)/2)
		limit := st.limit
		st.mu.Unlock()
		u.m.retries.WithLabelValues(string(s), "split").Inc()
		u.log.Warn("cloud refused a batch; halving", "stream", s, "events", len(bt.Events), "next_limit", limit, "err", err)
		if _, rerr := u.buf.Reissue(ctx, bt, max(1, len(bt.Events)/2)); rerr != nil {
			u.fail(s, rerr)
			backoff.Sleep(ctx, u.delay(attempt, 0))
		}
	case outReform:
		u.m.retries.WithLabelValues(string(s), "reform").Inc()
		u.log.Warn("idempotency key mismatch; re-forming the batch", "stream", s, "batch", bt.Token)
		if _, rerr := u.buf.Reissue(ctx, bt, len(bt.Events)); rerr != nil {
			u.fail(s, rerr)
			backoff.Sleep(ctx, u.delay(attempt, 0))
		}
	case outUnauthorized:
		u.fail(s, err)
		if !u.paused.Swap(true) {
			u.m.paused.Set(1)
			u.log.Error("ALERT: the cloud rejected the gateway's API key; uploads paused",
				"stream", s, "retry_in", u.opts.AuthRetryInterval.String(), "err", err)
		}
		_ = u.buf.RecordFailure(ctx, bt, err.Error())
		backoff.Sleep(ctx, u.opts.AuthRetryInterval)
	case outServerError:
		if u.isolate(ctx, s, bt, err) {
			return
		}
		u.retryLater(ctx, s, bt, err, retryAfter, attempt)
	default:
		u.retryLater(ctx, s, bt, err, retryAfter, attempt)
	}
}

// retryLater counts a failed attempt and sleeps the backoff.
func (u *Uplink) retryLater(ctx context.Context, s buffer.Stream, bt *buffer.Batch, err error, retryAfter time.Duration, attempt *int) {
	u.fail(s, err)
	u.m.retries.WithLabelValues(string(s), "error").Inc()
	if rerr := u.buf.RecordFailure(ctx, bt, err.Error()); rerr != nil {
		u.log.Error("record failure", "err", rerr)
	}
	d := u.delay(attempt, retryAfter)
	u.setBackoff(s, d)
	u.log.Warn("upload failed; retrying", "stream", s, "batch", bt.Token, "attempt", bt.Attempts,
		"retry_in", d.String(), "err", err)
	backoff.Sleep(ctx, d)
}

// maxTracked bounds the failure history kept in memory (a batch's history
// is forgotten when it is acknowledged, split or set aside).
const maxTracked = 4096

// isolate acts on a server error of bt and reports whether it split the
// batch or set its event aside (else the caller retries as usual).
//
// A batch is due for isolation after IsolateAfter consecutive server
// errors; a batch split off a persistently failing one already at its first
// error when another upload succeeded since its family's first failure (its
// sibling, typically), so a bisection costs one attempt per level. A single
// event always needs IsolateAfter errors of its own. Isolation then needs
// proof that the cloud is otherwise healthy: an upload that succeeded since
// the family's first failure, or else the authenticated ping answering 200.
// Without proof (a whole-cloud outage) nothing is split or set aside.
func (u *Uplink) isolate(ctx context.Context, s buffer.Stream, bt *buffer.Batch, cause error) bool {
	if len(bt.Events) == 0 {
		return false // a drop report alone: nothing to set aside
	}
	u.mu.Lock()
	tr := u.fails[bt.Token]
	if tr == nil {
		if len(u.fails) >= maxTracked {
			clear(u.fails)
		}
		tr = &failTrack{first: time.Now()}
		if f, ok := u.suspects[bt.Token]; ok {
			tr.first = f
		}
		u.fails[bt.Token] = tr
	}
	tr.n++
	n, first := tr.n, tr.first
	_, suspect := u.suspects[bt.Token]
	healthy := u.lastOK.After(first)
	u.mu.Unlock()
	single := len(bt.Events) == 1
	if n < u.opts.IsolateAfterFailures && (single || !suspect || !healthy) {
		return false
	}
	proof := "upload_succeeded"
	if !healthy {
		if err := u.ping(ctx); err != nil {
			u.log.Warn("a batch keeps failing with a server error and the cloud's health is not proven; retrying",
				"stream", s, "batch", bt.Token, "failures", n, "ping_err", err)
			return false
		}
		proof = "ping"
	}
	u.forgetTrack(bt.Token)
	if single {
		if err := u.buf.DeadLetter(ctx, bt, protocol.DropPersistentFailure, cause.Error()); err != nil {
			u.fail(s, err)
			return false
		}
		u.m.retries.WithLabelValues(string(s), "dead_letter").Inc()
		return true
	}
	tokens, err := u.buf.Reissue(ctx, bt, (len(bt.Events)+1)/2)
	if err != nil {
		u.fail(s, err)
		return false
	}
	u.mu.Lock()
	for _, t := range tokens {
		u.suspects[t] = first
	}
	u.mu.Unlock()
	u.m.retries.WithLabelValues(string(s), "isolate").Inc()
	u.log.Warn("a batch keeps failing with a server error while the cloud is healthy; splitting it to isolate the cause",
		"stream", s, "batch", bt.Token, "events", len(bt.Events), "failures", n, "proof", proof, "err", cause)
	return true
}

// forgetTrack drops a batch's failure history.
func (u *Uplink) forgetTrack(token string) {
	u.mu.Lock()
	delete(u.fails, token)
	delete(u.suspects, token)
	u.mu.Unlock()
}

// ping asks the cloud's authenticated ping endpoint whether it is healthy.
func (u *Uplink) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	a, err := u.cloud.Do(ctx, cloudclient.Request{Path: protocol.PathGatewayPing, MaxAnswer: maxAnswer})
	if err != nil {
		return err
	}
	if a.Status != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", protocol.PathGatewayPing, a.Status, http.StatusText(a.Status))
	}
	return nil
}

// ready reports whether a new batch should be claimed now, else how long to
// wait at most before checking again.
func (u *Uplink) ready(ctx context.Context, s buffer.Stream, limit int, maxBytes int64, backlog bool) (bool, time.Duration) {
	rows, bytes := u.buf.Unclaimed(s)
	if rows >= int64(limit) || bytes >= maxBytes || (backlog && rows > 0) {
		return true, 0
	}
	if rows == 0 {
		if s == buffer.StreamLogs {
			if pend, err := u.buf.HasPendingDrops(ctx); err == nil && pend {
				return true, 0
			}
		}
		return false, u.opts.FlushInterval
	}
	oldest, ok, err := u.buf.OldestUnclaimed(ctx, s)
	if err != nil || !ok {
		return false, u.opts.FlushInterval
	}
	age := time.Since(oldest)
	if age >= u.opts.FlushInterval {
		return true, 0
	}
	return false, u.opts.FlushInterval - age
}

func (u *Uplink) wait(ctx context.Context, s buffer.Stream, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-u.buf.Notify(s):
	}
}

// delay returns the next retry delay: the backoff policy's (full jitter)
// for this attempt, or a server's Retry-After when longer (capped at
// RetryAfterMax).
func (u *Uplink) delay(attempt *int, retryAfter time.Duration) time.Duration {
	d := u.pace.Delay(*attempt)
	*attempt++
	return backoff.Floor(d, retryAfter, u.opts.RetryAfterMax)
}

func (u *Uplink) fail(s buffer.Stream, err error) {
	u.mu.Lock()
	u.lastErr = fmt.Sprintf("%s: %v", s, err)
	u.lastErrAt = time.Now()
	u.mu.Unlock()
}

func (u *Uplink) setBackoff(s buffer.Stream, d time.Duration) {
	u.mu.Lock()
	u.backoff[string(s)] = d.Seconds()
	u.mu.Unlock()
}

// resume ends a pause after 401/403, once the cloud accepts the key again.
func (u *Uplink) resume() {
	if u.paused.Swap(false) {
		u.m.paused.Set(0)
		u.log.Info("the cloud accepted the API key again; uploads resumed")
	}
}

func (u *Uplink) succeeded(s buffer.Stream, bt *buffer.Batch) {
	now := time.Now()
	u.resume()
	u.mu.Lock()
	u.lastOK = now
	u.uploaded += int64(len(bt.Events))
	u.samples = append(u.samples, ackSample{at: now, n: len(bt.Events)})
	cut := 0
	for cut < len(u.samples) && now.Sub(u.samples[cut].at) > 10*time.Second {
		cut++
	}
	if cut > 0 || len(u.samples) > 4096 {
		cut = max(cut, len(u.samples)-4096)
		u.samples = append(u.samples[:0], u.samples[cut:]...)
	}
	u.mu.Unlock()
	u.m.events.WithLabelValues(string(s)).Add(float64(len(bt.Events)))
}

// Status returns the uplink's state.
func (u *Uplink) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	n := 0
	for _, sm := range u.samples {
		if now.Sub(sm.at) <= 10*time.Second {
			n += sm.n
		}
	}
	st := Status{RateEventsPerSecond: float64(n) / 10, UploadedEvents: u.uploaded, LastSuccessAt: u.lastOK,
		LastError: u.lastErr, LastErrorAt: u.lastErrAt, Backoff: map[string]float64{}}
	for k, v := range u.backoff {
		st.Backoff[k] = v
	}
	if u.paused.Load() {
		st.Paused = "unauthorized"
	}
	return st
}

// maxAnswer bounds how much of an answer of the cloud is read.
const maxAnswer = 64 << 10

// maxLinks bounds the agent batches an upload span links to.
const maxLinks = 64

// send uploads one batch inside its span (see Options.TracerProvider).
func (u *Uplink) send(ctx context.Context, bt *buffer.Batch) (outcome, time.Duration, error) {
	var links []trace.Link
	if tps, err := u.buf.TraceParents(ctx, bt, maxLinks); err != nil {
		u.log.Warn("trace contexts unreadable; the upload starts its own trace", "err", err, "batch", bt.Token)
	} else {
		for i, tp := range tps {
			if i == 0 {
				ctx = tracing.Extract(ctx, tp)
				continue
			}
			if sc := tracing.SpanContext(tp); sc.IsValid() {
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
	}
	ctx, span := u.tracer.Start(ctx, "uplink.upload", trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String(tracing.AttrGateway, u.opts.GatewayID), attribute.String(tracing.AttrBatch, bt.Token),
			attribute.String(tracing.AttrStream, string(bt.Stream)), attribute.Int(tracing.AttrEvents, len(bt.Events))))
	defer span.End()
	out, d, err := u.sendBatch(ctx, bt)
	if err != nil {
		span.SetStatus(codes.Error, "upload failed")
		if se := cloudclient.Status(err); se != nil {
			span.SetAttributes(attribute.Int("http.response.status_code", se.Status))
		}
	}
	return out, d, err
}

// sendBatch uploads one batch and classifies the answer.
func (u *Uplink) sendBatch(ctx context.Context, bt *buffer.Batch) (outcome, time.Duration, error) {
	req := cloudclient.Request{Method: http.MethodPost, IdempotencyKey: bt.Token, MaxAnswer: maxAnswer}
	var err error
	switch bt.Stream {
	case buffer.StreamScreenshots:
		req.Path = protocol.PathIngestScreenshots
		req.Body, req.ContentType, err = u.screenshotBody(bt)
		if err != nil {
			return outInvalid, 0, err
		}
	default:
		req.Path = protocol.PathIngestLogs
		if bt.Stream == buffer.StreamDevice {
			req.Path = protocol.PathIngestDeviceEvents
		}
		req.Body, err = u.gzipJSON(bt)
		if err != nil {
			return outRetry, 0, err
		}
		req.ContentType, req.ContentEncoding = "application/json", "gzip"
	}
	// The key is read once: a 401 to it is compared with the key current
	// when the answer arrives.
	req.Key = u.cloud.APIKey()
	start := time.Now()
	a, err := u.cloud.Do(ctx, req)
	stream := string(bt.Stream)
	se := cloudclient.Status(err)
	if err != nil && se == nil {
		u.m.batches.WithLabelValues(stream, "network_error").Inc()
		return outRetry, 0, err
	}
	u.m.latency.WithLabelValues(stream).Observe(time.Since(start).Seconds())
	if err == nil {
		u.m.batches.WithLabelValues(stream, strconv.Itoa(a.Status)).Inc()
		u.m.bytes.WithLabelValues(stream).Add(float64(len(req.Body)))
		return outOK, 0, nil
	}
	u.m.batches.WithLabelValues(stream, strconv.Itoa(se.Status)).Inc()
	switch se.Status {
	case http.StatusRequestEntityTooLarge:
		return outTooLarge, 0, err
	case http.StatusUnprocessableEntity:
		// Two different 422s: a reused idempotency key is about the batch
		// (re-form the rows under a new key); a validation failure is about
		// an event in it (bisect like a 400, to isolate and drop that one).
		if se.Body.Error == protocol.ErrCodeValidation {
			return outInvalid, 0, err
		}
		return outReform, 0, err
	case http.StatusBadRequest:
		return outInvalid, 0, err
	case http.StatusUnauthorized, http.StatusForbidden:
		if u.cloud.APIKey() != req.Key {
			// The key was rotated while this request was in flight (the
			// cloud revokes the old key when the new one is first used):
			// retry with the new key instead of pausing.
			return outRetry, 0, fmt.Errorf("%w (sent with the previous API key; retrying with the rotated one)", err)
		}
		return outUnauthorized, 0, err
	default:
		out := outRetry
		if se.Status >= 500 {
			out = outServerError
		}
		return out, se.RetryAfter, err
	}
}

// writeEvents writes the JSON array of a batch's events, inserting each
// event's seq into its stored payload.
func writeEvents(w *bytes.Buffer, bt *buffer.Batch) {
	w.WriteByte('[')
	for i, e := range bt.Events {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(`{"seq":`)
		w.WriteString(strconv.FormatInt(e.Seq, 10))
		p := e.Payload
		if len(p) > 2 {
			w.WriteByte(',')
			w.Write(p[1:])
		} else {
			w.WriteByte('}')
		}
	}
	w.WriteByte(']')
}

func (u *Uplink) batchJSON(bt *buffer.Batch) []byte {
	var w bytes.Buffer
	u.writeBatchJSON(&w, bt)
	return w.Bytes()
}

// writeBatchJSON writes the batch's JSON to w.
func (u *Uplink) writeBatchJSON(w *bytes.Buffer, bt *buffer.Batch) {
	w.Grow(int(bt.Bytes) + 256)
	w.WriteString(`{"gateway_id":`)
	gid, _ := json.Marshal(u.opts.GatewayID)
	w.Write(gid)
	w.WriteString(`,"events":`)
	writeEvents(w, bt)
	w.WriteString(`,"drops":`)
	drops := bt.Drops
	if drops == nil {
		drops = []protocol.Drop{}
	}
	d, _ := json.Marshal(drops)
	w.Write(d)
	w.WriteByte('}')
}

// maxKeptBuffer bounds the capacity of a JSON buffer kept for the next
// batch (a batch of large events is not kept).
const maxKeptBuffer = 8 << 20

func (u *Uplink) gzipJSON(bt *buffer.Batch) ([]byte, error) {
	var raw *bytes.Buffer
	select {
	case raw = <-u.raw:
		raw.Reset()
	default:
		raw = &bytes.Buffer{}
	}
	defer func() {
		if raw.Cap() <= maxKeptBuffer {
			select {
			case u.raw <- raw:
			default:
			}
		}
	}()
	u.writeBatchJSON(raw, bt)
	var zw *gzip.Writer
	select {
	case zw = <-u.gz:
	default:
		zw, _ = gzip.NewWriterLevel(io.Discard, gzip.BestSpeed) // a valid level: no error
	}
	defer func() {
		zw.Reset(io.Discard) // drop the reference to this batch's body
		select {
		case u.gz <- zw:
		default:
		}
	}()
	// The compressed body goes to the request (and may be held by the
	// HTTP client after the answer), so it is not reused.
	var out bytes.Buffer
	out.Grow(raw.Len() / 4)
	zw.Reset(&out)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, fmt.Errorf("gzip batch: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip batch: %w", err)
	}
	return out.Bytes(), nil
}

// screenshotBody builds the multipart body: the batch JSON, then one part
// per image named by event id. The boundary derives from the token so that
// a retry sends identical bytes.
func (u *Uplink) screenshotBody(bt *buffer.Batch) ([]byte, string, error) {
	var out bytes.Buffer
	mw := multipart.NewWriter(&out)
	if err := mw.SetBoundary("staffcontrol-" + strings.ReplaceAll(bt.Token, "-", "")); err != nil {
		return nil, "", fmt.Errorf("multipart boundary: %w", err)
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="`+protocol.ScreenshotBatchPart+`"`)
	h.Set("Content-Type", "application/json")
	pw, err := mw.CreatePart(h)
	if err != nil {
		return nil, "", fmt.Errorf("multipart: %w", err)
	}
	pw.Write(u.batchJSON(bt))
	for _, e := range bt.Events {
		var meta struct {
			Screenshot *protocol.Screenshot `json:"screenshot"`
		}
		_ = json.Unmarshal(e.Payload, &meta)
		ct := "application/octet-stream"
		if meta.Screenshot != nil {
			ct = meta.Screenshot.ContentType
		}
		data, err := os.ReadFile(u.buf.ScreenshotPath(e.EventID))
		if err != nil {
			return nil, "", fmt.Errorf("read screenshot %s: %w", e.EventID, err)
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="`+e.EventID+`"; filename="`+e.EventID+`"`)
		h.Set("Content-Type", ct)
		pw, err := mw.CreatePart(h)
		if err != nil {
			return nil, "", fmt.Errorf("multipart: %w", err)
		}
		pw.Write(data)
	}
	if err := mw.Close(); err != nil {
		return nil, "", fmt.Errorf("multipart: %w", err)
	}
	return out.Bytes(), mw.FormDataContentType(), nil
}
