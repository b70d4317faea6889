// Package collector receives data from desktop agents over HTTP JSON (and
// gRPC, see grpc.go): event batches, screenshot uploads, registration and
// heartbeats. It validates every request as a whole (a 4xx names the field;
// nothing of a refused request is written), assigns missing event ids
// (UUIDv7), and answers 2xx only after the events are committed to the
// buffer. Under back-pressure it answers 503 with Retry-After.
package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/edge/agentauth"
	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/jsondecode"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// Config is the collector's tunables: the collector.* keys of the
// gateway's configuration that bound agent requests (internal/edge/config
// composes it), declared here once. Zero fields take the defaults below.
type Config struct {
	// MaxBodyBytes bounds an events request body (after gzip decoding).
	MaxBodyBytes int64
	// MaxBatchEvents bounds the events of one request.
	MaxBatchEvents int
	// MaxScreenshotBytes bounds one screenshot image.
	MaxScreenshotBytes int64
	// RetryAfter is sent with 503 answers.
	RetryAfter time.Duration
	// HeartbeatInterval is told to agents; an agent silent for three
	// intervals no longer counts as connected.
	HeartbeatInterval time.Duration
}

// Options configures a Collector: its Config and what it is given. Zero
// fields take the defaults below.
type Options struct {
	Config
	// MaxAgents bounds the registry of known agents.
	MaxAgents int
	// GatewayID is told to agents at registration.
	GatewayID string
	// Policy returns the gateway's current policy for GET /v1/agents/policy,
	// or nil before one was applied (see agentcontrol.go).
	Policy func() *AgentPolicy
	// CommandRedeliver is how long a delivered, unacknowledged agent command
	// waits before it is delivered again (DefaultCommandRedeliver).
	CommandRedeliver time.Duration
	// Auth enrols and authenticates agents. Without it every request is
	// refused (401), enrolment with 503: the collector fails closed.
	Auth *agentauth.Authority
	// Throttle limits failed enrolments per source and secret prefix (429
	// with Retry-After); nil means a default limiter without metrics.
	Throttle   *throttle.Limiter
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// TracerProvider traces each accepted agent batch (a span per batch,
	// whose context the buffer keeps with the events); nil: no tracing.
	TracerProvider trace.TracerProvider
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultMaxBodyBytes       = 8 << 20
	DefaultMaxBatchEvents     = 1000
	DefaultMaxScreenshotBytes = 10 << 20
	DefaultRetryAfter         = 5 * time.Second
	DefaultHeartbeatInterval  = 30 * time.Second
	DefaultMaxAgents          = 100_000
)

// Collector turns agent requests into buffered events.
type Collector struct {
	buf    *buffer.Buffer
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	agents *Agents
	cmds   *AgentCommands
	m      *metrics
	json   *jsondecode.Decoder

	throttle *throttle.Limiter
	tracer   trace.Tracer
}

// New returns a Collector writing to buf.
func New(buf *buffer.Buffer, opts Options) *Collector {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxBatchEvents <= 0 {
		opts.MaxBatchEvents = DefaultMaxBatchEvents
	}
	if opts.MaxScreenshotBytes <= 0 {
		opts.MaxScreenshotBytes = DefaultMaxScreenshotBytes
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.MaxAgents <= 0 {
		opts.MaxAgents = DefaultMaxAgents
	}
	c := &Collector{buf: buf, opts: opts, log: opts.Logger, now: opts.Now, throttle: opts.Throttle,
		tracer: tracing.OrNoop(opts.TracerProvider).Tracer("github.com/staffcontrol/staffcontrol/internal/edge/collector")}
	if c.throttle == nil {
		c.throttle, _ = throttle.New(throttle.Config{}, throttle.Deps{Logger: opts.Logger}) // defaults never fail
	}
	// Unknown members are ignored (docs/protocol.md); names match
	// case-insensitively, as encoding/json did.
	c.json = jsondecode.New(jsondecode.IgnoreUnknownFields(), jsondecode.CaseInsensitiveNames())
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if opts.CommandRedeliver <= 0 {
		opts.CommandRedeliver = DefaultCommandRedeliver
	}
	c.opts = opts
	c.agents = newAgents(opts.MaxAgents, 3*opts.HeartbeatInterval, c.now)
	c.cmds = newAgentCommands(c.now, opts.CommandRedeliver)
	c.m = newMetrics(opts.Registerer, c)
	c.registerAgentControlMetrics(opts.Registerer)
	return c
}

// Agents returns the registry of agents seen by this collector.
func (c *Collector) Agents() *Agents { return c.agents }

// reject counts a refused request under reason: one in
// gateway_requests_rejected_total, and events (the number of events the
// request carried, 0 when unknown, e.g. an unparseable body) in
// gateway_events_rejected_total.
func (c *Collector) reject(reason string, events int, e *apperr.Error) *apperr.Error {
	c.m.rejectedRequests.WithLabelValues(reason).Inc()
	if events > 0 {
		c.buf.Rejected(reason, events)
	}
	return e
}

// pressureError maps buffer refusals to 503s. Append's refusals were
// counted as events by the buffer itself; here the request is counted.
func (c *Collector) pressureError(err error) error {
	ra := c.opts.RetryAfter
	switch {
	case errors.Is(err, buffer.ErrFull):
		return c.reject("buffer_full", 0, &apperr.Error{Code: apperr.Unavailable, Reason: protocol.ErrCodeBufferFull, Message: "the gateway buffer is full; keep the data and retry later", RetryAfter: ra})
	case errors.Is(err, buffer.ErrShedding):
		return c.reject("shedding", 0, &apperr.Error{Code: apperr.Unavailable, Reason: protocol.ErrCodeShedding, Message: "the gateway is shedding screenshots; retry later", RetryAfter: ra})
	case errors.Is(err, buffer.ErrClosed):
		return c.reject("closed", 0, &apperr.Error{Code: apperr.Unavailable, Message: "the gateway is shutting down", RetryAfter: ra})
	}
	return err
}

// checkLevel refuses under back-pressure before anything is written: all
// data at the critical level, screenshots at the warning level. events is
// the number of events the request carries (known before the check), counted
// in gateway_events_rejected_total.
func (c *Collector) checkLevel(screenshot bool, events int) error {
	ra := c.opts.RetryAfter
	switch lvl := c.buf.Level(); {
	case lvl >= buffer.LevelCritical:
		return c.reject("buffer_full", events, &apperr.Error{Code: apperr.Unavailable, Reason: protocol.ErrCodeBufferFull, Message: "the gateway buffer is full; keep the data and retry later", RetryAfter: ra})
	case screenshot && lvl >= buffer.LevelWarning:
		return c.reject("shedding", events, &apperr.Error{Code: apperr.Unavailable, Reason: protocol.ErrCodeShedding, Message: "the gateway is shedding screenshots; retry later", RetryAfter: ra})
	}
	return nil
}

// AcceptEvents validates a batch from the authenticated agent uid as a
// whole, commits it and returns the acknowledgement. It returns
// *apperr.Error for refusals (403 for events of another agent).
func (c *Collector) AcceptEvents(ctx context.Context, uid string, batch *protocol.EventBatch) (*protocol.EventBatchResponse, error) {
	ctx, span := c.tracer.Start(ctx, "collector.accept_events", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.Int(tracing.AttrEvents, len(batch.Events))))
	defer span.End()
	if c.opts.GatewayID != "" && span.IsRecording() {
		span.SetAttributes(attribute.String(tracing.AttrGateway, c.opts.GatewayID))
	}
	resp, err := c.acceptEvents(ctx, uid, batch)
	if err != nil {
		span.SetStatus(codes.Error, "refused")
		span.SetAttributes(attribute.String(tracing.AttrStatus, string(apperr.CodeOf(err))))
	}
	return resp, err
}

// acceptEvents is AcceptEvents inside its span; the span's context goes to
// the buffer with the records (Record.TraceParent).
func (c *Collector) acceptEvents(ctx context.Context, uid string, batch *protocol.EventBatch) (*protocol.EventBatchResponse, error) {
	n := len(batch.Events)
	if batch.AgentUID == "" {
		batch.AgentUID = uid // and so every event without one (ValidateEventBatch)
	}
	if n == 0 {
		return nil, c.reject("validation", 0, &apperr.Error{Code: apperr.Invalid, Field: "events", Message: "at least one event is required"})
	}
	if n > c.opts.MaxBatchEvents {
		return nil, c.reject("too_large", n, &apperr.Error{Code: apperr.TooLarge, Field: "events",
			Message: fmt.Sprintf("%d events, at most %d per request", n, c.opts.MaxBatchEvents)})
	}
	now := c.now()
	received := now.UTC()
	recs := make([]buffer.Record, n)
	if err := protocol.ValidateEventBatch(batch, now); err != nil {
		return nil, c.reject("validation", n, fieldError(err))
	}
	if err := c.checkBatchAgent(uid, batch); err != nil {
		return nil, err
	}
	if err := c.checkLevel(false, n); err != nil {
		return nil, err
	}
	tp := tracing.Traceparent(ctx)
	// The payloads are encoded one after the other into one buffer (the
	// bytes json.Marshal gives, without an allocation per event) and
	// sliced out of it once all are written.
	var enc bytes.Buffer
	enc.Grow(n * 512)
	je := json.NewEncoder(&enc)
	ends := make([]int, n)
	for i := range batch.Events {
		e := &batch.Events[i]
		if e.EventID == "" {
			e.EventID = uuid.Must(uuid.NewV7()).String()
		}
		e.ReceivedAt = &received
		if err := je.Encode(e); err != nil {
			return nil, fmt.Errorf("collector: encode event: %w", err)
		}
		enc.Truncate(enc.Len() - 1) // Encode's newline
		ends[i] = enc.Len()
	}
	all := enc.Bytes()
	for i := range batch.Events {
		e := &batch.Events[i]
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		recs[i] = buffer.Record{Class: protocol.ClassLog, Type: e.Type, EventID: e.EventID,
			Payload: all[start:ends[i]:ends[i]], TraceParent: tp}
	}
	out, err := c.buf.Append(ctx, recs)
	if err != nil {
		return nil, c.pressureError(err)
	}
	resp := &protocol.EventBatchResponse{Events: make([]protocol.EventAck, n)}
	for i, o := range out {
		resp.Events[i] = protocol.EventAck{EventID: batch.Events[i].EventID, Seq: o.Seq, Duplicate: o.Duplicate}
		if o.Duplicate {
			resp.Duplicates++
		} else {
			resp.Accepted++
			c.m.accepted.WithLabelValues(batch.Events[i].Type).Inc()
		}
	}
	c.agents.Seen(protocol.AgentRegistration{AgentUID: uid, ComputerName: batch.ComputerName}, false)
	return resp, nil
}

// fieldError turns a protocol validation error into a 400 naming the field.
func fieldError(err error) *apperr.Error {
	var fe *apperr.FieldError
	if errors.As(err, &fe) {
		return &apperr.Error{Code: apperr.Invalid, Field: fe.Field, Message: fe.Message}
	}
	return &apperr.Error{Code: apperr.Invalid, Field: "(body)", Message: err.Error()}
}

// Register records the registration or heartbeat of the authenticated
// agent uid (an empty agent_uid is uid's; another is refused with 403).
func (c *Collector) Register(uid string, reg protocol.AgentRegistration, full bool) (*protocol.AgentRegistrationResponse, error) {
	if reg.AgentUID == "" {
		reg.AgentUID = uid
	}
	if err := protocol.ValidateAgentRegistration(&reg); err != nil {
		return nil, c.reject("validation", 0, fieldError(err))
	}
	if reg.AgentUID != uid {
		return nil, c.wrongAgent("agent_uid", reg.AgentUID, uid, 0)
	}
	c.agents.Seen(reg, full)
	return &protocol.AgentRegistrationResponse{GatewayID: c.opts.GatewayID,
		HeartbeatIntervalSeconds: int(c.opts.HeartbeatInterval / time.Second), BufferLevel: c.buf.Level().String()}, nil
}
