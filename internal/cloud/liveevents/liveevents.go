// Package liveevents serves the Dashboard API's live updates as
// Server-Sent Events (GET /api/v2/events): gateway status changes, command
// status changes and policy-distribution progress.
//
// The events are rows of public.dashboard_events. Triggers on their sources
// stage each change in the changing transaction (migration 00035, no lock);
// a Hub's publisher moves the staged rows into the log every
// PublishInterval (app.dashboard_events_publish: one publisher at a time
// across replicas, ids handed out so that none becomes visible after a
// higher one) and announces them with NOTIFY dashboard_events, so a change
// any process makes reaches every API instance. A Hub holds one LISTEN
// connection per process and wakes every connected client on each
// notification; each client then reads the rows
// after the last id it sent under its own tenant context, so what a client
// sees is decided by row-level security alone, never by Go code. Clients
// resume with Last-Event-ID; a resume that cannot be served exactly (more
// than MaxBacklog events missed, or events already pruned) gets a reset
// event, telling the client to reload.
package liveevents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/liveevents/liveeventsdb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
)

// The event kinds: the three the database records, and reset, which the
// stream sends when a client must reload.
const (
	// KindGatewayStatus: a gateway's status changed (data: gateway_id,
	// status, previous).
	KindGatewayStatus = "gateway.status"
	// KindCommandStatus: a gateway command's status changed (data:
	// command_id, gateway_id, type, status, previous).
	KindCommandStatus = "command.status"
	// KindDistributionProgress: a policy distribution's stage or counts
	// changed (data: distribution_id, policy_id, stage, total, waiting,
	// pending, delivered, applied, failed).
	KindDistributionProgress = "policy_distribution.progress"
	// KindReset: events were missed that cannot be replayed; reload
	// (data: reason, "backlog" or "pruned").
	KindReset = "reset"
)

// Kinds are the kinds a client may filter on (?kinds=).
func Kinds() []string {
	return []string{KindGatewayStatus, KindCommandStatus, KindDistributionProgress}
}

// Channel is the NOTIFY channel of new events (payload: the event id).
const Channel = "dashboard_events"

// Config bounds the hub. Zero fields take their defaults.
type Config struct {
	// Heartbeat is the longest a stream stays silent: a comment line is
	// sent after this long without an event, keeping proxies from closing
	// it. Default 15 s.
	Heartbeat time.Duration
	// MaxBacklog is how many events a resuming client is replayed at
	// most; more missed than this and it gets a reset. Default 1000.
	MaxBacklog int
	// MaxClients is how many streams the process serves at once; one more
	// is refused as unavailable. Default 1000.
	MaxClients int
	// BatchSize is how many events one read of a client takes. Default 200.
	BatchSize int
	// WriteTimeout is how long one write to a client may take: each write
	// moves the connection's write deadline this far ahead (past the
	// server's whole-request write timeout). Default 10 s.
	WriteTimeout time.Duration
	// ReadTimeout bounds one read of a client's events. Default 5 s.
	ReadTimeout time.Duration
	// PruneInterval is how often the hub deletes events older than 24
	// hours (app.dashboard_events_prune, at most 10,000 rows a call; a
	// call that deletes that many is followed by another at once).
	// Default 10 min; negative: never (another process prunes).
	PruneInterval time.Duration
	// RetryAfter is the Retry-After of a refusal for too many streams.
	// Default 5 s.
	RetryAfter time.Duration
	// PublishInterval is how often the hub publishes the staged changes
	// (app.dashboard_events_publish, up to PublishBatch rows a call, again at
	// once while a call moves that many): how late an event can appear after
	// its commit. Every replica publishes; the database runs one publish at a
	// time, and a call with nothing staged takes no lock. Default 100 ms;
	// negative: never (another process publishes).
	PublishInterval time.Duration
	// PublishBatch is how many staged rows one publish moves at most.
	// Default 10,000.
	PublishBatch int
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Heartbeat, 15*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.ReadTimeout, 5*time.Second)
	def(&c.PruneInterval, 10*time.Minute)
	def(&c.RetryAfter, 5*time.Second)
	def(&c.PublishInterval, 100*time.Millisecond)
	if c.PublishBatch <= 0 {
		c.PublishBatch = 10000
	}
	if c.MaxBacklog <= 0 {
		c.MaxBacklog = 1000
	}
	if c.MaxClients <= 0 {
		c.MaxClients = 1000
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 200
	}
	return c
}

// Deps are the hub's collaborators.
type Deps struct {
	// DB holds the one LISTEN connection (taken out of the pool for good)
	// and runs the prune; the Dashboard API's pool (staff_dashboard).
	DB *pgxpool.Pool
	// Logger; nil discards.
	Logger *slog.Logger
	// WriteError answers a request Serve refuses (an apperr value naming
	// the field) before the stream starts; the Dashboard API's error
	// writer. Nil writes a bare status.
	WriteError func(http.ResponseWriter, *http.Request, error)
	// Registerer receives the hub's metrics; nil: none.
	Registerer prometheus.Registerer
}

// Hub fans the database's notifications out to the connected streams. It is
// a lifecycle.Service: Start starts the LISTEN loop, the publisher and the
// prune, Stop ends every stream and then the loops. Serve works without
// Start, but then a stream reads only at its heartbeats (events arrive up to
// a Heartbeat late) and only what another process publishes; in a
// lifecycle.Group
// put the Hub after the HTTP listener, so that its Stop, which runs first,
// ends the streams the listener's graceful shutdown would otherwise wait
// for.
type Hub struct {
	cfg Config
	d   Deps
	log *slog.Logger

	clientsGauge prometheus.Gauge
	sent         *prometheus.CounterVec
	published    prometheus.Counter
	publishFails prometheus.Counter

	mu      sync.Mutex
	clients map[*client]struct{}
	closed  bool
	done    chan struct{} // closed by Stop: every stream ends
	group   *lifecycle.Group
}

type client struct {
	wake chan struct{} // buffered 1: wake-ups coalesce
}

// New returns a Hub; nothing runs until Start.
func New(cfg Config, d Deps) *Hub {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{cfg: cfg.withDefaults(), d: d, log: d.Logger, clients: map[*client]struct{}{}, done: make(chan struct{}),
		clientsGauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dashboard_live_clients", Help: "Live-event streams connected now."}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dashboard_live_events_sent_total",
			Help: "Live events written to streams, by kind (reset included)."}, []string{"kind"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "dashboard_live_events_published_total",
			Help: "Staged changes this process moved into the live-events log."}),
		publishFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "dashboard_live_events_publish_errors_total",
			Help: "Publishes of the staged changes that failed (the next one retries)."}),
	}
	if d.Registerer != nil {
		for _, c := range []prometheus.Collector{h.clientsGauge, h.sent, h.published, h.publishFails} {
			if err := d.Registerer.Register(c); err != nil {
				h.log.Warn("liveevents: metric not registered", "err", err)
			}
		}
	}
	members := []lifecycle.Member{{Name: "live events listen", Service: lifecycle.NewLoop("live events listen", h.log, h.listen)}}
	if h.cfg.PublishInterval > 0 {
		members = append(members, lifecycle.Member{Name: "live events publish", Service: lifecycle.NewLoop("live events publish", h.log,
			func(ctx context.Context) error {
				return lifecycle.Every(ctx, h.cfg.PublishInterval, true, h.publishAll)
			})})
	}
	if h.cfg.PruneInterval > 0 {
		members = append(members, lifecycle.Member{Name: "live events prune", Service: lifecycle.NewLoop("live events prune", h.log,
			func(ctx context.Context) error { return lifecycle.Every(ctx, h.cfg.PruneInterval, true, h.pruneAll) })})
	}
	h.group = lifecycle.NewGroup(h.log, members...)
	return h
}

// Start starts the LISTEN loop, the periodic publish and the periodic prune.
func (h *Hub) Start(ctx context.Context) error {
	if h.d.DB == nil {
		return errors.New("liveevents: no database pool")
	}
	return h.group.Start(ctx)
}

// Stop ends every open stream (clients reconnect, elsewhere or later, with
// Last-Event-ID), then the loops. A stream asked for after Stop is refused
// as unavailable.
func (h *Hub) Stop(ctx context.Context) error {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	h.mu.Unlock()
	return h.group.Stop(ctx)
}

// Clients is how many streams are open now.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// rewakes are when, after a lost LISTEN connection, every client is woken
// again: postgres.Listen calls missed at the loss and listens again about
// a second later, so notifications of commits in between are lost too.
// (Past these, each stream still reads at every heartbeat.)
var rewakes = []time.Duration{1500 * time.Millisecond, 3 * time.Second, 6 * time.Second}

// listen runs postgres.Listen: every notification wakes every client, and
// so does a lost connection, at once and again once it is probably back
// (notifications sent meanwhile are gone; each client catches up by id).
func (h *Hub) listen(ctx context.Context) error {
	var timers []*time.Timer
	defer func() {
		for _, t := range timers {
			t.Stop()
		}
	}()
	postgres.Listen(ctx, h.d.DB, []string{Channel}, func(string, string) { h.wakeAll() }, func(err error) {
		h.log.WarnContext(ctx, "live events: LISTEN connection lost; waking every client to catch up", "err", err)
		h.wakeAll()
		for _, t := range timers {
			t.Stop()
		}
		timers = timers[:0]
		for _, d := range rewakes {
			timers = append(timers, time.AfterFunc(d, h.wakeAll))
		}
	})
	return ctx.Err()
}

// Publish moves up to PublishBatch staged changes into the log (and the
// progress of the distributions they touch) and returns how many it moved.
// The hub calls it every PublishInterval.
func (h *Hub) Publish(ctx context.Context) (int, error) {
	n, err := liveeventsdb.New(h.d.DB).Publish(ctx, int32(h.cfg.PublishBatch))
	if err != nil {
		return 0, fmt.Errorf("liveevents: publish: %w", err)
	}
	h.published.Add(float64(n))
	return int(n), nil
}

func (h *Hub) publishAll(ctx context.Context) {
	for {
		n, err := h.Publish(ctx)
		if err != nil {
			if ctx.Err() == nil {
				h.publishFails.Inc()
				h.log.WarnContext(ctx, "live events: publish failed", "err", err)
			}
			return
		}
		if n < h.cfg.PublishBatch {
			return
		}
	}
}

// Prune deletes events older than 24 hours, at most 10,000, and returns
// how many. The hub calls it every PruneInterval.
func (h *Hub) Prune(ctx context.Context) (int, error) {
	n, err := liveeventsdb.New(h.d.DB).Prune(ctx)
	if err != nil {
		return 0, fmt.Errorf("liveevents: prune: %w", err)
	}
	return int(n), nil
}

const pruneBatch = 10000 // app.dashboard_events_prune's bound

func (h *Hub) pruneAll(ctx context.Context) {
	for range 100 { // at most a million rows per round
		n, err := h.Prune(ctx)
		if err != nil {
			if ctx.Err() == nil {
				h.log.WarnContext(ctx, "live events: prune failed", "err", err)
			}
			return
		}
		if n < pruneBatch {
			return
		}
	}
}

func (h *Hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		select {
		case c.wake <- struct{}{}:
		default: // already woken: the next read sees this event too
		}
	}
}

func (h *Hub) join() (*client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		e := apperr.New(apperr.Unavailable, "", "the server is shutting down; reconnect")
		e.RetryAfter = h.cfg.RetryAfter
		return nil, e
	}
	if len(h.clients) >= h.cfg.MaxClients {
		e := apperr.New(apperr.Unavailable, "", "too many live-event streams; retry later")
		e.RetryAfter = h.cfg.RetryAfter
		return nil, e
	}
	c := &client{wake: make(chan struct{}, 1)}
	h.clients[c] = struct{}{}
	h.clientsGauge.Set(float64(len(h.clients)))
	return c, nil
}

func (h *Hub) leave(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, c)
	h.clientsGauge.Set(float64(len(h.clients)))
}

// request is what Serve parsed from the request.
type request struct {
	kinds  []string // empty: every kind
	after  int64
	resume bool
}

// parseRequest reads ?kinds= (comma-separated, may repeat) and the resume
// point: the Last-Event-ID header, else ?last_event_id=.
func parseRequest(r *http.Request) (request, error) {
	var q request
	q.kinds = []string{}
	for _, v := range r.URL.Query()["kinds"] {
		for k := range strings.SplitSeq(v, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			if !slices.Contains(Kinds(), k) {
				return q, apperr.Field("kinds", "unknown event kind %q; want a comma-separated list of %s", k, strings.Join(Kinds(), ", "))
			}
			if !slices.Contains(q.kinds, k) {
				q.kinds = append(q.kinds, k)
			}
		}
	}
	field, v := "Last-Event-ID", r.Header.Get("Last-Event-ID")
	if v == "" {
		field, v = "last_event_id", r.URL.Query().Get("last_event_id")
	}
	if v == "" {
		return q, nil
	}
	id, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || id < 0 {
		return q, apperr.Field(field, "want the id of the last event received, a non-negative integer")
	}
	q.after, q.resume = id, true
	return q, nil
}

// event is one row to send.
type event struct {
	id   int64
	kind string
	data []byte
}

// Serve streams the events visible to t to w until the client goes, ctx
// (the request's) ends or the hub stops. db is the pool the events are read
// with, under postgres.InTenant with t (staff_dashboard; staff_admin for a
// platform ADMIN), so row-level security decides what t sees: ORG_ADMIN, HR
// and ADMIN their organisation's events, everyone else none (the stream
// stays open with heartbeats). Refusals before the stream starts go
// through Deps.WriteError: an unknown kind (field "kinds"), a malformed
// Last-Event-ID, too many streams (unavailable, with Retry-After). t is
// fixed for the stream's life: to end a stream when its credentials expire,
// give r a context with that deadline (the client then reconnects, signs
// in again if needed, and resumes by Last-Event-ID).
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, db postgres.Beginner, t postgres.Tenant) {
	q, err := parseRequest(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	c, err := h.join()
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	defer h.leave(c)
	ctx := r.Context()

	// Joined before the first read, so that no wake-up is lost between it
	// and the wait.
	cursor, first, reset, err := h.begin(ctx, db, t, q)
	if err != nil {
		h.log.ErrorContext(ctx, "live events: start a stream", "err", err)
		h.writeError(w, r, apperr.Wrap(apperr.Unavailable, err, "live events are unavailable; retry"))
		return
	}
	s := &stream{w: w, rc: http.NewResponseController(w), h: h}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if err := s.comment("live events"); err != nil {
		return
	}
	if reset != "" {
		if err := s.send(event{id: cursor, kind: KindReset, data: fmt.Appendf(nil, `{"reason":%q}`, reset)}); err != nil {
			return
		}
	}
	if err := s.sendAll(first); err != nil {
		return
	}
	timer := time.NewTimer(h.cfg.Heartbeat) // this stream's heartbeat
	defer timer.Stop()
	beat := false
	for {
		// Read at every wake-up and at every heartbeat (a safety net
		// should a wake-up have been lost).
		events, err := h.read(ctx, db, t, cursor, q.kinds, h.cfg.BatchSize)
		if err != nil {
			if ctx.Err() == nil {
				h.log.WarnContext(ctx, "live events: read failed; ending the stream (the client resumes)", "err", err)
			}
			return
		}
		switch {
		case len(events) > 0:
			if err := s.sendAll(events); err != nil {
				return
			}
			cursor = events[len(events)-1].id
			timer.Reset(h.cfg.Heartbeat)
		case beat:
			if err := s.comment("heartbeat"); err != nil {
				return
			}
			timer.Reset(h.cfg.Heartbeat)
		}
		beat = false
		if len(events) == h.cfg.BatchSize {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
			return
		case <-h.done:
			return
		case <-c.wake:
		case <-timer.C:
			beat = true
		}
	}
}

// begin finds where a stream starts: the last committed id for a new
// client; for a resuming one, the events after its id (at most
// MaxBacklog, which are returned to send first), or a reset ("backlog":
// more missed; "pruned": events after its id may be gone) continuing from
// the last committed id.
func (h *Hub) begin(ctx context.Context, db postgres.Beginner, t postgres.Tenant, q request) (cursor int64, first []event, reset string, err error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ReadTimeout)
	defer cancel()
	err = postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		b, err := liveeventsdb.New(tx).Bounds(ctx)
		if err != nil {
			return fmt.Errorf("liveevents: bounds: %w", err)
		}
		cursor = b.LastID
		if !q.resume {
			return nil
		}
		if q.after > b.LastID || q.after < b.FirstID-1 {
			reset = "pruned"
			return nil
		}
		first, err = readTx(ctx, tx, q.after, q.kinds, h.cfg.MaxBacklog+1)
		if err != nil {
			return err
		}
		if len(first) > h.cfg.MaxBacklog {
			first, reset = nil, "backlog"
			return nil
		}
		cursor = q.after
		if len(first) > 0 {
			cursor = first[len(first)-1].id
		}
		return nil
	})
	return cursor, first, reset, err
}

// read is the events after id visible to t, at most n.
func (h *Hub) read(ctx context.Context, db postgres.Beginner, t postgres.Tenant, after int64, kinds []string, n int) ([]event, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ReadTimeout)
	defer cancel()
	var out []event
	err := postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		var err error
		out, err = readTx(ctx, tx, after, kinds, n)
		return err
	})
	return out, err
}

func readTx(ctx context.Context, tx pgx.Tx, after int64, kinds []string, n int) ([]event, error) {
	rows, err := liveeventsdb.New(tx).EventsAfter(ctx, liveeventsdb.EventsAfterParams{After: after, Kinds: kinds, MaxRows: int32(n)})
	if err != nil {
		return nil, fmt.Errorf("liveevents: read events after %d: %w", after, err)
	}
	out := make([]event, 0, len(rows))
	for _, r := range rows {
		var b bytes.Buffer
		if err := json.Compact(&b, r.Data); err != nil { // one line, whatever the row holds
			return nil, fmt.Errorf("liveevents: event %d: %w", r.ID, err)
		}
		out = append(out, event{id: r.ID, kind: r.Kind, data: b.Bytes()})
	}
	return out, nil
}

func (h *Hub) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if h.d.WriteError != nil {
		h.d.WriteError(w, r, err)
		return
	}
	status := http.StatusServiceUnavailable
	if apperr.CodeOf(err) == apperr.Invalid {
		status = http.StatusBadRequest
	}
	http.Error(w, http.StatusText(status), status)
}

// stream writes the text/event-stream format, each write under a fresh
// write deadline and flushed.
type stream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	h   *Hub
	buf []byte
}

func (s *stream) sendAll(events []event) error {
	if len(events) == 0 {
		return nil
	}
	s.buf = s.buf[:0]
	for _, e := range events {
		s.buf = appendEvent(s.buf, e)
	}
	if err := s.write(); err != nil {
		return err
	}
	for _, e := range events {
		s.h.sent.WithLabelValues(e.kind).Inc()
	}
	return nil
}

func (s *stream) send(e event) error {
	s.buf = appendEvent(s.buf[:0], e)
	if err := s.write(); err != nil {
		return err
	}
	s.h.sent.WithLabelValues(e.kind).Inc()
	return nil
}

func (s *stream) comment(text string) error {
	s.buf = append(append(append(s.buf[:0], ": "...), text...), "\n\n"...)
	return s.write()
}

func appendEvent(b []byte, e event) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, e.id, 10)
	b = append(b, "\nevent: "...)
	b = append(b, e.kind...)
	b = append(b, "\ndata: "...)
	b = append(b, e.data...)
	return append(b, "\n\n"...)
}

func (s *stream) write() error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.h.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	if err := s.rc.Flush(); err != nil {
		return err
	}
	return nil
}
