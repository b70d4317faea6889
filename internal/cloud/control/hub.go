// Package control is the Agent API's end of the control channel: one
// WebSocket per gateway (authenticated by its API key, and its client
// certificate under mTLS), heartbeats into gateway_status_snapshots and
// online/offline state, commands from the PostgreSQL queue delivered the
// moment they are enqueued (LISTEN/NOTIFY wakes the replica holding the
// socket), two-phase acknowledgements, and a REST long-poll fallback for
// gateways that cannot hold a WebSocket.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control/controldb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/jsondecode"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// Options are the hub's timings.
type Options struct {
	// HeartbeatInterval is what gateways are told (default 30 s); a gateway
	// is offline after 3 missed heartbeats, and never after less than 30 s
	// of silence (the database's floor, measured by its clock).
	HeartbeatInterval time.Duration
	// SweepInterval is how often the Sweeper runs the command sweep and
	// the offline check, and how often the hub looks for due commands
	// (redeliveries whose backoff has passed, lost notifications)
	// (default 5 s).
	SweepInterval time.Duration
	// ClaimBatch bounds the commands claimed per wake (default 32).
	ClaimBatch int
	// TracerProvider traces the recording of command outcomes that carry a
	// trace (issue 19); nil: no tracing.
	TracerProvider trace.TracerProvider
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = 30 * time.Second
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 5 * time.Second
	}
	if o.ClaimBatch <= 0 {
		o.ClaimBatch = 32
	}
	return o
}

// Hub holds this replica's gateway sockets.
type Hub struct {
	tracer trace.Tracer
	db     *pgxpool.Pool // as the ingest role
	gws    *auth.Gateways
	queue  *commandqueue.Queue
	logger *slog.Logger
	opts   Options
	up     websocket.Upgrader
	// json decodes inbound messages and REST acknowledgements as
	// encoding/json did (Lenient, names case-insensitive, unknown members
	// ignored).
	json *jsondecode.Decoder

	mu      sync.Mutex
	conns   map[uuid.UUID]*conn
	waiters map[uuid.UUID][]chan struct{} // REST long-polls
	// waiterOrg is the organisation of each gateway in waiters (the
	// due-command check asks in each organisation's own context).
	waiterOrg map[uuid.UUID]int64

	connected prometheus.Gauge
	delivered *prometheus.CounterVec
	heartbeat prometheus.Counter
	refused   *prometheus.CounterVec
	replaced  prometheus.Counter
	revoked   prometheus.Counter
	latency   prometheus.Histogram
	batches   *prometheus.HistogramVec
	// batchFallbacks counts batches written one message at a time after
	// their transaction failed.
	batchFallbacks prometheus.Counter

	inbound  group[*inbound]  // heartbeats, connects, received acknowledgements
	finishes group[*inbound]  // completed and failed acknowledgements
	claims   group[*claimReq] // claims for woken gateways
}

// Group commit bounds (batch.go): transactions at once in each group, and
// messages per transaction.
const (
	groupFlushes = 4
	groupBatch   = 500
)

// New returns a Hub and registers its metrics.
func New(db *pgxpool.Pool, gws *auth.Gateways, queue *commandqueue.Queue, logger *slog.Logger, reg prometheus.Registerer, opts Options) *Hub {
	opts = opts.withDefaults()
	h := &Hub{db: db, gws: gws, queue: queue, logger: logger, opts: opts,
		tracer: tracing.OrNoop(opts.TracerProvider).Tracer("github.com/staffcontrol/staffcontrol/internal/cloud/control"),
		up: websocket.Upgrader{ReadBufferSize: readBuffer, WriteBufferSize: writeBuffer,
			WriteBufferPool: &sync.Pool{}},
		json:    jsondecode.New(jsondecode.IgnoreUnknownFields(), jsondecode.CaseInsensitiveNames(), jsondecode.Lenient()),
		conns:   map[uuid.UUID]*conn{},
		waiters: map[uuid.UUID][]chan struct{}{}, waiterOrg: map[uuid.UUID]int64{},
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "control_connected_gateways",
			Help: "Gateways holding a control socket on this replica."}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "control_commands_delivered_total",
			Help: "Commands sent to gateways, by channel (websocket, rest)."}, []string{"channel"}),
		heartbeat: prometheus.NewCounter(prometheus.CounterOpts{Name: "control_heartbeats_total", Help: "Heartbeats received."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "control_messages_refused_total",
			Help: "Inbound control messages answered with an error frame, by code."}, []string{"code"}),
		replaced: prometheus.NewCounter(prometheus.CounterOpts{Name: "control_sockets_replaced_total",
			Help: "Sockets closed because the same gateway connected again."}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{Name: "control_sockets_revoked_total",
			Help: "Sockets closed because the gateway's key was revoked or replaced."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "control_enqueue_to_send_seconds",
			Help:    "Time from a command's enqueue to its send on a socket.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30}}),
	}
	h.batches = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "control_batch_size",
		Help:    "Messages written per group-commit batch, by group (inbound: heartbeats and received acknowledgements; finish: completed and failed ones; claim).",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500}}, []string{"group"})
	h.batchFallbacks = prometheus.NewCounter(prometheus.CounterOpts{Name: "control_batch_fallbacks_total",
		Help: "Batches whose transaction failed and whose messages were then written one at a time."})
	h.inbound = group[*inbound]{maxActive: groupFlushes, maxBatch: groupBatch, flush: h.flushInbound("inbound")}
	h.finishes = group[*inbound]{maxActive: groupFlushes, maxBatch: groupBatch, flush: h.flushInbound("finish")}
	h.claims = group[*claimReq]{maxActive: groupFlushes, maxBatch: groupBatch, flush: h.flushClaims}
	reg.MustRegister(h.connected, h.delivered, h.heartbeat, h.refused, h.replaced, h.revoked, h.latency, h.batches, h.batchFallbacks)
	return h
}

// Run listens for new commands and revocations and looks for due commands
// every SweepInterval, until ctx ends; then it closes the sockets. The
// queue's sweep and the offline check are the Sweeper's, run beside it.
func (h *Hub) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		postgres.Listen(ctx, h.db, []string{"gateway_commands", "gateway_revoked"}, func(channel, payload string) {
			id, err := uuid.Parse(payload)
			if err != nil {
				return
			}
			if channel == "gateway_revoked" {
				h.revoke(ctx, id)
				return
			}
			h.wake(id)
		}, func(err error) {
			h.logger.WarnContext(ctx, "control notifications interrupted; waking every gateway", "err", err)
			h.wakeAll()
		})
	}()
	go func() {
		defer wg.Done()
		// The hub's own recovery: redeliveries whose backoff has passed,
		// and anything a lost notification missed. (The queue's sweep and
		// the offline check are the Sweeper's.)
		_ = lifecycle.Every(ctx, h.opts.SweepInterval, false, h.wakeDue)
	}()
	<-ctx.Done()
	h.mu.Lock()
	for _, c := range h.conns {
		c.close(websocket.CloseGoingAway, "server shutting down")
	}
	h.mu.Unlock()
	wg.Wait()
}

// wakeDue wakes the local gateways that have a command due: redeliveries
// whose backoff has passed, and anything a lost notification missed. It asks
// once per organisation, in that organisation's context: gateway_commands_due
// answers nothing without one, so no caller can probe another organisation's
// gateways by id.
func (h *Hub) wakeDue(ctx context.Context) {
	h.mu.Lock()
	byOrg := map[int64][]uuid.UUID{}
	for id, c := range h.conns {
		byOrg[c.gw.OrganizationID] = append(byOrg[c.gw.OrganizationID], id)
	}
	for id := range h.waiters {
		if _, ok := h.conns[id]; !ok {
			byOrg[h.waiterOrg[id]] = append(byOrg[h.waiterOrg[id]], id)
		}
	}
	h.mu.Unlock()
	for org, ids := range byOrg {
		due, err := h.queue.Due(ctx, postgres.Tenant{OrganizationID: org}, ids)
		if err != nil {
			if ctx.Err() == nil {
				h.logger.ErrorContext(ctx, "due-command check failed", "organization", org, "err", err)
			}
			continue
		}
		for _, id := range due {
			h.wake(id)
		}
	}
}

// wake tells the holder of gateway's socket, or its long-polls, to claim.
func (h *Hub) wake(gateway uuid.UUID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.conns[gateway]; c != nil {
		c.poke()
	}
	for _, w := range h.waiters[gateway] {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

func (h *Hub) wakeAll() {
	h.mu.Lock()
	ids := make([]uuid.UUID, 0, len(h.conns)+len(h.waiters))
	for id := range h.conns {
		ids = append(ids, id)
	}
	for id := range h.waiters {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	for _, id := range ids {
		h.wake(id)
	}
}

// revoke closes the socket of a gateway whose key was revoked or replaced,
// unless the key it authenticated with is still valid (a rotation's new key).
func (h *Hub) revoke(ctx context.Context, gateway uuid.UUID) {
	h.mu.Lock()
	c := h.conns[gateway]
	h.mu.Unlock()
	if c == nil {
		return
	}
	if _, err := h.gws.Authenticate(ctx, c.apiKey); err == nil {
		return
	}
	h.revoked.Inc()
	c.close(websocket.ClosePolicyViolation, "api key revoked")
}

// ServeSocket upgrades GET /v2/gateway/socket, after RequireGateway has
// authenticated the gateway.
func (h *Hub) ServeSocket(w http.ResponseWriter, r *http.Request) {
	gw, ok := auth.GatewayFrom(r.Context())
	if !ok {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	ws, err := h.up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered.
	}
	ctx := context.WithoutCancel(r.Context())
	c := &conn{hub: h, gw: gw, apiKey: r.Header.Get(protocol.HeaderAPIKey), ws: ws, ctx: ctx, done: make(chan struct{})}
	h.mu.Lock()
	if old := h.conns[gw.ID]; old != nil {
		h.replaced.Inc()
		old.close(websocket.ClosePolicyViolation, "replaced by a newer connection")
	}
	h.conns[gw.ID] = c
	h.connected.Set(float64(len(h.conns)))
	h.mu.Unlock()

	if err := h.record(ctx, gw, nil); err != nil {
		h.logger.ErrorContext(ctx, "mark gateway online", "gateway", gw.ID, "err", err)
	}
	c.send(protocol.MsgWelcome, protocol.Welcome{GatewayID: gw.ID.String(), HeartbeatIntervalSeconds: int(h.opts.HeartbeatInterval / time.Second)})
	c.schedulePing()
	c.poke() // everything pending, at once
	// The reader runs on a goroutine of its own and the handler returns:
	// the HTTP server's connection state, buffers and its goroutine's
	// stack are freed while the socket lives on.
	go func() {
		c.readLoop(ctx)
		c.close(websocket.CloseNormalClosure, "")
		h.mu.Lock()
		if h.conns[gw.ID] == c {
			delete(h.conns, gw.ID)
		}
		h.connected.Set(float64(len(h.conns)))
		h.mu.Unlock()
	}()
}

// touch records that a gateway was heard from, with its heartbeat if any.
func (h *Hub) touch(ctx context.Context, gw auth.Gateway, hb *protocol.Heartbeat) error {
	return postgres.InTenant(ctx, h.db, postgres.Tenant{OrganizationID: gw.OrganizationID}, func(tx pgx.Tx) error {
		version := ""
		if hb != nil {
			version = hb.Versions["gateway"]
		}
		q := controldb.New(tx)
		if err := q.MarkOnline(ctx, controldb.MarkOnlineParams{ID: gw.ID, Version: version}); err != nil {
			return err
		}
		if hb == nil {
			return nil
		}
		if err := deviceStatus(ctx, q, gw, hb); err != nil {
			return err
		}
		versions, _ := json.Marshal(hb.Versions)
		return q.InsertSnapshot(ctx, controldb.InsertSnapshotParams{OrganizationID: gw.OrganizationID, GatewayID: gw.ID,
			CpuUsage: clampPct(hb.CPUPercent), MemoryUsage: clampPct(hb.MemoryPercent), DiskUsage: clampPct(hb.DiskPercent),
			BufferUsage: clampPct(hb.BufferUsage * 100), QueueDepth: int64(hb.QueueDepth), ConnectedAgents: int64(hb.ConnectedAgents),
			Versions: versions})
	})
}

// deviceStatus writes a heartbeat's device states and serials.
func deviceStatus(ctx context.Context, q *controldb.Queries, gw auth.Gateway, hb *protocol.Heartbeat) error {
	if len(hb.Devices) > 0 {
		p := controldb.DeviceStatusParams{GatewayID: &gw.ID}
		sp := controldb.DeviceSerialParams{GatewayID: &gw.ID}
		for _, d := range hb.Devices {
			p.Ids = append(p.Ids, d.ID)
			p.Statuses = append(p.Statuses, d.Status)
			at := time.Unix(0, 0) // none (see the query)
			if d.LastEventAt != nil {
				at = *d.LastEventAt
			}
			p.LastEventAts = append(p.LastEventAts, at)
			if d.Serial != "" {
				sp.Ids = append(sp.Ids, d.ID)
				sp.Serials = append(sp.Serials, d.Serial)
			}
		}
		if _, err := q.DeviceStatus(ctx, p); err != nil {
			return fmt.Errorf("device status: %w", err)
		}
		if len(sp.Ids) > 0 {
			if _, err := q.DeviceSerial(ctx, sp); err != nil {
				return fmt.Errorf("device status: %w", err)
			}
		}
	}
	return nil
}

func clampPct(v float64) float64 {
	if v < 0 {
		return 0
	}
	if v > 100 {
		return 100
	}
	return v
}

// ack applies a command acknowledgement from a gateway.
func (h *Hub) ack(ctx context.Context, gw auth.Gateway, a protocol.CommandAck) error {
	id, err := uuid.Parse(a.CommandID)
	if err != nil {
		return fmt.Errorf("command_id: not a UUID")
	}
	t := postgres.Tenant{OrganizationID: gw.OrganizationID}
	switch a.Phase {
	case protocol.AckReceived:
		err = h.queue.Received(ctx, t, gw.ID, id)
		if errors.Is(err, commandqueue.ErrNotFound) {
			// A late or repeated ack of this gateway's command is fine;
			// a command it never had is not.
			if c, gerr := h.queue.Get(ctx, t, id); gerr == nil && c.GatewayID == gw.ID {
				return nil
			} else if gerr != nil && !errors.Is(gerr, commandqueue.ErrNotFound) {
				return gerr
			}
		}
		return err
	case protocol.AckCompleted, protocol.AckFailed:
		return h.queue.Finish(ctx, t, gw.ID, id, a.Phase == protocol.AckCompleted, a.Result, a.Error)
	}
	return fmt.Errorf("phase: want received, completed or failed")
}
