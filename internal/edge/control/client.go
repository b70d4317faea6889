// Package control is the gateway's end of the control channel: a WebSocket
// to the Agent API that reconnects with full-jitter backoff, sends heartbeats,
// receives commands, runs each through the executor and acknowledges it in
// two phases; and, after repeated WebSocket failures, the REST long-poll
// fallback. Reconnects are paced with random delays so that a cloud restart
// does not bring every gateway back in the same second.
package control

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/backoff"
	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// Config is the client's tunables: the control.* keys of the gateway's
// configuration (internal/edge/config composes it), declared here once.
// Zero fields take the defaults in parentheses.
type Config struct {
	// BackoffInitial and BackoffMax are the backoff.Policy of reconnects
	// and of REST polls after a failure (1 s, 60 s; full jitter).
	BackoffInitial, BackoffMax time.Duration
	// FallbackAfter is how many WebSocket failures in a row switch to the
	// REST long-poll for FallbackFor (5, 5 min).
	FallbackAfter int
	FallbackFor   time.Duration
	// MaxConcurrentCommands is how many commands run at once, each in its
	// lane (8, at most 64; see lanes.go: commands of one lane run one at a
	// time in arrival order, different lanes concurrently).
	MaxConcurrentCommands int
}

// Options configure a Client: its Config and what it is given.
type Options struct {
	Config
	// TracerProvider traces each command (a span continuing the command's
	// trace around its execution and acknowledgement); nil: no tracing.
	TracerProvider trace.TracerProvider
	// SocketURL is the control channel (wss://host/v2/gateway/socket).
	SocketURL string
	// BaseURL is the Agent API for the REST fallback (https://host).
	BaseURL string
	// APIKey returns the gateway's current API key.
	APIKey func() string
	// TLS is the client TLS configuration (mTLS), or nil.
	TLS *tls.Config
	// Heartbeat returns the gateway's state for each heartbeat.
	Heartbeat func() protocol.Heartbeat
	// Execute runs a command (at most once per id) and returns its outcome.
	Execute func(context.Context, protocol.Command) (json.RawMessage, error)
	// HeartbeatInterval applies until the cloud's welcome says otherwise (30 s).
	HeartbeatInterval time.Duration
	Logger            *slog.Logger
}

// Client is the control-channel client. It is a lifecycle.Service (Start
// keeps the channel up in the background, Stop ends it); Run is the same
// work as a blocking call.
type Client struct {
	loop   *lifecycle.Loop
	opts   Options
	tracer trace.Tracer
	// pace spaces reconnects and REST polls after failures.
	pace backoff.Policy
	// rest is the cloud client of the REST fallback (long-polls: a longer
	// timeout than the gateway's other requests) and of the WebSocket
	// dial's headers.
	rest      *cloudclient.Client
	connected atomic.Bool
	mode      atomic.Value // "websocket", "rest", "disconnected"
	commands  atomic.Int64
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.BackoffInitial <= 0 {
		opts.BackoffInitial = time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = time.Minute
	}
	if opts.FallbackAfter <= 0 {
		opts.FallbackAfter = 5
	}
	if opts.FallbackFor <= 0 {
		opts.FallbackFor = 5 * time.Minute
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 30 * time.Second
	}
	c := &Client{opts: opts, pace: backoff.Policy{Initial: opts.BackoffInitial, Max: opts.BackoffMax},
		tracer: tracing.OrNoop(opts.TracerProvider).Tracer("github.com/staffcontrol/staffcontrol/internal/edge/control"),
		rest:   cloudclient.New(cloudclient.Options{BaseURL: opts.BaseURL, APIKey: opts.APIKey, HTTP: cloudclient.HTTPClient(opts.TLS, restTimeout)})}
	c.mode.Store("disconnected")
	c.loop = lifecycle.NewLoop("control client", opts.Logger, func(ctx context.Context) error {
		c.Run(ctx)
		return nil
	})
	return c
}

// Start keeps the control channel up in the background; it returns at once.
func (c *Client) Start(ctx context.Context) error { return c.loop.Start(ctx) }

// Stop closes the channel and waits for the client to end, or for ctx. A
// command cut short is not in the executor's ledger and is redelivered.
func (c *Client) Stop(ctx context.Context) error { return c.loop.Stop(ctx) }

// Connected reports whether a WebSocket session is up.
func (c *Client) Connected() bool { return c.connected.Load() }

// Mode is "websocket", "rest" or "disconnected".
func (c *Client) Mode() string { return c.mode.Load().(string) }

// Commands is how many commands were handled.
func (c *Client) Commands() int64 { return c.commands.Load() }

// restTimeout bounds one REST request: a long-poll waits up to 30 s for
// commands.
const restTimeout = 70 * time.Second

// errAuth is a refusal of the gateway's credentials.
var errAuth = errors.New("control: the cloud refused this gateway's API key")

// Run keeps the control channel up until ctx ends.
func (c *Client) Run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		if failures >= c.opts.FallbackAfter {
			c.mode.Store("rest")
			c.opts.Logger.WarnContext(ctx, "control: WebSocket keeps failing; polling over REST", "failures", failures, "for", c.opts.FallbackFor)
			c.pollREST(ctx, c.opts.FallbackFor)
			failures = c.opts.FallbackAfter - 1 // one more WebSocket try, then back here
			continue
		}
		started := time.Now()
		err := c.session(ctx)
		c.connected.Store(false)
		c.mode.Store("disconnected")
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			failures = 0 // a session that lasted was a success
		}
		failures++
		// Full jitter, so that gateways dropped together come back spread
		// out; a refused key waits up to the longest delay.
		wait := c.pace.Delay(failures - 1)
		if errors.Is(err, errAuth) {
			wait = backoff.Jitter(c.pace.Cap(math.MaxInt))
		}
		c.opts.Logger.InfoContext(ctx, "control: disconnected; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		backoff.Sleep(ctx, wait)
	}
}

func (c *Client) dialer() *websocket.Dialer {
	d := *websocket.DefaultDialer
	if c.opts.TLS != nil {
		// The gateway shares its uplink transport's TLS configuration,
		// to which net/http adds "h2" on first use; a WebSocket handshake
		// is HTTP/1.1 only.
		tc := c.opts.TLS.Clone()
		tc.NextProtos = []string{"http/1.1"}
		d.TLSClientConfig = tc
	}
	d.HandshakeTimeout = 15 * time.Second
	return &d
}

// session runs one WebSocket session until it breaks.
func (c *Client) session(ctx context.Context) error {
	ws, resp, err := c.dialer().DialContext(ctx, c.opts.SocketURL, c.rest.Header())
	if err != nil {
		if resp != nil && cloudclient.ResponseError(http.MethodGet, protocol.PathGatewaySocket, resp).Unauthorized() {
			return errAuth
		}
		return fmt.Errorf("control: dial: %w", err)
	}
	defer ws.Close()
	c.connected.Store(true)
	c.mode.Store("websocket")
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()

	out := make(chan protocol.Envelope, 256)
	send := func(typ string, v any) {
		data, _ := json.Marshal(v)
		select {
		case out <- protocol.Envelope{V: protocol.ControlVersion, Type: typ, Data: data}:
		case <-sctx.Done():
		}
	}
	writeErr := make(chan error, 1)
	interval := make(chan time.Duration, 1)
	go func() {
		// The session's writer: heartbeats on a ticker of its own (not
		// lifecycle.Every), because it is this connection's state — the
		// welcome on this connection resets its interval, and it writes
		// between this connection's other frames.
		hb := time.NewTicker(c.opts.HeartbeatInterval)
		defer hb.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case d := <-interval:
				hb.Reset(d)
			case env := <-out:
				_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if err := ws.WriteJSON(env); err != nil {
					writeErr <- err
					return
				}
			case <-hb.C:
				data, _ := json.Marshal(c.opts.Heartbeat())
				_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if err := ws.WriteJSON(protocol.Envelope{V: protocol.ControlVersion, Type: protocol.MsgHeartbeat, Data: data}); err != nil {
					writeErr <- err
					return
				}
			}
		}
	}()
	// Commands run in lanes (lanes.go): in the order received within a
	// lane, concurrently across lanes. The session ends after its
	// commands: they are cancelled with it and waited for.
	lanes := newDispatcher(sctx, c.opts.MaxConcurrentCommands, func(ctx context.Context, cmd protocol.Command) {
		c.handle(ctx, cmd, func(a protocol.CommandAck) { send(protocol.MsgCommandAck, a) })
	})
	defer func() { cancel(); lanes.wait() }()
	send(protocol.MsgHeartbeat, c.opts.Heartbeat())
	go func() { <-sctx.Done(); ws.Close() }()
	for {
		var env protocol.Envelope
		if err := ws.ReadJSON(&env); err != nil {
			select {
			case werr := <-writeErr:
				return fmt.Errorf("control: write: %w", werr)
			default:
			}
			return fmt.Errorf("control: read: %w", err)
		}
		switch env.Type {
		case protocol.MsgWelcome:
			var w protocol.Welcome
			if json.Unmarshal(env.Data, &w) == nil && w.HeartbeatIntervalSeconds > 0 {
				interval <- time.Duration(w.HeartbeatIntervalSeconds) * time.Second
			}
		case protocol.MsgCommand:
			var cmd protocol.Command
			if err := json.Unmarshal(env.Data, &cmd); err != nil || cmd.ID == "" {
				continue
			}
			send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckReceived})
			if !lanes.submit(cmd) {
				// Full: the command stays unacknowledged-complete and is redelivered.
				c.opts.Logger.WarnContext(ctx, "control: command queue full; the cloud will redeliver", "command_id", cmd.ID, "type", cmd.Type)
			}
		case protocol.MsgError:
			c.logRefusal(ctx, env.Data)
		}
	}
}

// logRefusal logs an error frame: the cloud refused a message this
// gateway sent. The session goes on; a retryable refusal (the cloud could
// not record it just now) is a warning, a permanent one an error, since
// the same message will be refused again.
func (c *Client) logRefusal(ctx context.Context, data json.RawMessage) {
	var ce protocol.ControlError
	if err := json.Unmarshal(data, &ce); err != nil {
		c.opts.Logger.WarnContext(ctx, "control: the cloud refused a message", "error_frame", string(data))
		return
	}
	args := []any{"code", ce.Code, "reason", ce.Message, "retryable", ce.Retryable}
	if ce.Type != "" {
		args = append(args, "refused_type", ce.Type)
	}
	if ce.Field != "" {
		args = append(args, "field", ce.Field)
	}
	if ce.CommandID != "" {
		args = append(args, "command_id", ce.CommandID)
	}
	if ce.Retryable {
		c.opts.Logger.WarnContext(ctx, "control: the cloud could not record a message just now", args...)
		return
	}
	c.opts.Logger.ErrorContext(ctx, "control: the cloud refused a message", args...)
}

// handle executes a command and acknowledges its outcome, inside a span
// continuing the command's trace (Command.TraceParent); the acknowledgement
// carries the span's context back.
func (c *Client) handle(ctx context.Context, cmd protocol.Command, ack func(protocol.CommandAck)) {
	ctx, span := c.tracer.Start(tracing.Extract(ctx, cmd.TraceParent), "control.command", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String(tracing.AttrCommand, cmd.ID), attribute.String(tracing.AttrCommandType, cmd.Type)))
	defer span.End()
	res, err := c.opts.Execute(ctx, cmd)
	if ctx.Err() != nil {
		return
	}
	c.commands.Add(1)
	tp := tracing.Traceparent(ctx)
	if err != nil {
		span.SetStatus(codes.Error, "command failed")
		ack(protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckFailed, Error: err.Error(), TraceParent: tp})
		return
	}
	ack(protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckCompleted, Result: res, TraceParent: tp})
}

// pollREST long-polls for commands for a while. A poll that fails (no
// answer, or a refusal: not served here) is repeated after a backoff delay,
// or the cloud's Retry-After when longer.
func (c *Client) pollREST(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	post := func(a protocol.CommandAck) {
		_, _ = c.rest.Do(ctx, cloudclient.Request{Method: http.MethodPost,
			Path: strings.Replace(protocol.PathGatewayCommandAck, "{id}", a.CommandID, 1), JSON: a})
	}
	// Commands run in lanes, as over the WebSocket; the period ends after
	// its running commands (not cancelled: a command listed again while it
	// runs is not run twice, and one that runs long is not cut short).
	lanes := newDispatcher(ctx, c.opts.MaxConcurrentCommands, func(ctx context.Context, cmd protocol.Command) { c.handle(ctx, cmd, post) })
	defer lanes.wait()
	failures := 0
	for ctx.Err() == nil && time.Now().Before(deadline) {
		var list protocol.CommandList
		err := c.rest.Call(ctx, cloudclient.Request{Path: protocol.PathGatewayCommands + "?wait=30s", MaxAnswer: maxCommandList}, &list)
		if err != nil {
			wait := c.pace.Delay(failures)
			if se := cloudclient.Status(err); se != nil {
				wait = backoff.Floor(wait, se.RetryAfter, c.pace.Cap(math.MaxInt))
			}
			failures++
			backoff.Sleep(ctx, wait)
			continue
		}
		failures = 0
		for _, cmd := range list.Commands {
			post(protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckReceived})
			lanes.submit(cmd) // not taken: not completed, so listed again
		}
	}
}

// maxCommandList bounds a REST answer of pending commands.
const maxCommandList = 8 << 20
