package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Agent control: the agents' side of the control plane. Agents fetch the
// gateway's current policy (GET /v1/agents/policy, strong ETag = checksum,
// If-None-Match → 304), long-poll their commands
// (GET /v1/agents/{agent_uid}/commands?wait=25s) and acknowledge each one
// (POST /v1/agents/{agent_uid}/commands/{id}/ack). They report the policy
// version they run in heartbeats and acknowledgements; the registry keeps
// it per agent.
//
// The agent command queue is in memory on purpose. Its only producer is
// the executor, whose commands (restart_agent) wait for the agents'
// acknowledgements before they are recorded in the executor's ledger: a
// gateway crash loses the queue and the wait together, the cloud command is
// not acknowledged, so the cloud redelivers it and the executor runs it
// again (agents may restart twice; a restart is harmless to repeat).

// AgentPolicy is the policy the gateway serves to its agents.
type AgentPolicy struct {
	PolicyID int64
	Version  string
	Checksum string
	Content  json.RawMessage
}

// Agent command queue bounds and timings.
const (
	// DefaultCommandRedeliver is how long a delivered, unacknowledged agent
	// command waits before a later poll returns it again.
	DefaultCommandRedeliver = 30 * time.Second
	// MaxCommandWait bounds the long-poll's wait parameter.
	MaxCommandWait = 60 * time.Second
	// maxCommandsPerAgent bounds one agent's queue.
	maxCommandsPerAgent = 16
)

// ErrAgentQueueFull is returned by Enqueue when an agent has too many
// commands outstanding.
var ErrAgentQueueFull = errors.New("collector: the agent's command queue is full")

// ErrUnknownCommand is returned by Ack for an id that is not pending for
// the agent.
var ErrUnknownCommand = errors.New("collector: no such command pending for this agent")

// AgentCommands is the bounded in-memory queue of commands for agents.
type AgentCommands struct {
	now       func() time.Time
	redeliver time.Duration

	mu      sync.Mutex
	queues  map[string]*agentQueue
	pending int
	closed  chan struct{}
	once    sync.Once

	acks *prometheus.CounterVec
}

type agentQueue struct {
	cmds    []*pendingCommand
	wake    chan struct{} // closed and replaced when a command is queued
	waiters int           // long-polls in progress
}

type pendingCommand struct {
	cmd         protocol.AgentCommand
	deliveredAt time.Time
	done        chan protocol.AgentCommandAck // buffered (1)
}

func newAgentCommands(now func() time.Time, redeliver time.Duration) *AgentCommands {
	return &AgentCommands{now: now, redeliver: redeliver, queues: map[string]*agentQueue{}, closed: make(chan struct{}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_agent_command_acks_total",
			Help: "Agent command acknowledgements by status (completed, failed).",
		}, []string{"status"})}
}

func (q *AgentCommands) queueLocked(uid string) *agentQueue {
	aq := q.queues[uid]
	if aq == nil {
		aq = &agentQueue{wake: make(chan struct{})}
		q.queues[uid] = aq
	}
	return aq
}

// Enqueue queues a command for an agent and returns its id and a channel
// that receives the agent's acknowledgement. The caller waits as long as
// it wants and then calls Cancel for an unacknowledged command.
func (q *AgentCommands) Enqueue(uid, typ string, payload any) (string, <-chan protocol.AgentCommandAck, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return "", nil, fmt.Errorf("collector: encode agent command: %w", err)
	}
	pc := &pendingCommand{cmd: protocol.AgentCommand{ID: uuid.Must(uuid.NewV7()).String(), Type: typ, Payload: raw,
		CreatedAt: q.now().UTC()}, done: make(chan protocol.AgentCommandAck, 1)}
	q.mu.Lock()
	defer q.mu.Unlock()
	aq := q.queueLocked(uid)
	if len(aq.cmds) >= maxCommandsPerAgent {
		return "", nil, ErrAgentQueueFull
	}
	aq.cmds = append(aq.cmds, pc)
	q.pending++
	close(aq.wake)
	aq.wake = make(chan struct{})
	return pc.cmd.ID, pc.done, nil
}

// Cancel removes a command that is no longer awaited.
func (q *AgentCommands) Cancel(uid, id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.removeLocked(uid, id)
}

func (q *AgentCommands) removeLocked(uid, id string) *pendingCommand {
	aq := q.queues[uid]
	if aq == nil {
		return nil
	}
	for i, pc := range aq.cmds {
		if pc.cmd.ID == id {
			aq.cmds = append(aq.cmds[:i], aq.cmds[i+1:]...)
			q.pending--
			if len(aq.cmds) == 0 && aq.waiters == 0 {
				delete(q.queues, uid)
			}
			return pc
		}
	}
	return nil
}

// Pending counts queued, unacknowledged commands.
func (q *AgentCommands) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending
}

// Poll returns the agent's due commands (never delivered, or delivered
// longer than the redelivery interval ago and still unacknowledged; they
// are marked delivered), waiting up to wait for one to be queued. It
// returns early (empty) when ctx ends or the queue is closed.
func (q *AgentCommands) Poll(ctx context.Context, uid string, wait time.Duration) []protocol.AgentCommand {
	q.mu.Lock()
	aq := q.queueLocked(uid)
	aq.waiters++
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		aq.waiters--
		if aq.waiters == 0 && len(aq.cmds) == 0 && q.queues[uid] == aq {
			delete(q.queues, uid)
		}
		q.mu.Unlock()
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		now := q.now()
		var out []protocol.AgentCommand
		q.mu.Lock()
		for _, pc := range aq.cmds {
			if pc.deliveredAt.IsZero() || now.Sub(pc.deliveredAt) >= q.redeliver {
				pc.deliveredAt = now
				out = append(out, pc.cmd)
			}
		}
		wake := aq.wake
		q.mu.Unlock()
		if len(out) > 0 {
			return out
		}
		if wait <= 0 {
			return []protocol.AgentCommand{}
		}
		select {
		case <-wake:
		case <-timer.C:
			return []protocol.AgentCommand{}
		case <-ctx.Done():
			return []protocol.AgentCommand{}
		case <-q.closed:
			return []protocol.AgentCommand{}
		}
	}
}

// Ack records an agent's acknowledgement and hands it to the waiter.
func (q *AgentCommands) Ack(uid, id string, ack protocol.AgentCommandAck) error {
	q.mu.Lock()
	pc := q.removeLocked(uid, id)
	q.mu.Unlock()
	if pc == nil {
		return ErrUnknownCommand
	}
	q.acks.WithLabelValues(ack.Status).Inc()
	pc.done <- ack
	return nil
}

// Close ends every long-poll at once (the gateway is stopping) and makes
// later polls answer immediately.
func (q *AgentCommands) Close() { q.once.Do(func() { close(q.closed) }) }

func (c *Collector) registerAgentControlMetrics(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_agent_commands_pending",
		Help: "Commands queued for agents and not yet acknowledged.",
	}, func() float64 { return float64(c.cmds.Pending()) })
	reg.MustRegister(c.cmds.acks, pending)
}

// AgentCommands returns the queue of commands for agents.
func (c *Collector) AgentCommands() *AgentCommands { return c.cmds }

// agentControlRoutes registers the agent control endpoints.
func (c *Collector) agentControlRoutes(mux *http.ServeMux) {
	mux.Handle("GET "+protocol.PathAgentPolicy, c.timedStatus("policy", c.handlePolicy))
	mux.Handle("GET "+protocol.PathAgentCommands, c.timedStatus("commands", c.handleCommands))
	mux.Handle("POST "+protocol.PathAgentCommandAck, c.timedStatus("command_ack", c.handleCommandAck))
}

// timedStatus is timed for handlers that choose their success status.
func (c *Collector) timedStatus(route string, h func(http.ResponseWriter, *http.Request) (int, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code, err := h(w, r)
		if err != nil {
			code = c.writeError(w, err)
		}
		c.m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		c.m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

func validationError(field, msg string) *apperr.Error {
	return &apperr.Error{Code: apperr.Invalid, Field: field, Message: msg}
}

// agentUID authenticates the request and checks that the {agent_uid} path
// segment is the credential's agent (403 otherwise).
func (c *Collector) agentUID(r *http.Request) (string, error) {
	uid, err := c.authHTTP(r)
	if err != nil {
		return "", err
	}
	path := r.PathValue("agent_uid")
	if err := protocol.CheckText("agent_uid", path, true, protocol.MaxShortField); err != nil {
		return "", c.reject("validation", 0, fieldError(err))
	}
	if path != uid {
		return "", c.wrongAgent("agent_uid", path, uid, 0)
	}
	return uid, nil
}

// etagMatches reports whether an If-None-Match header matches etag (weak
// comparison, as RFC 9110 prescribes for If-None-Match).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// handlePolicy serves the current policy: 200 with the document, 304 when
// If-None-Match names its checksum, 404 before any policy was applied.
func (c *Collector) handlePolicy(w http.ResponseWriter, r *http.Request) (int, error) {
	if _, err := c.authHTTP(r); err != nil {
		return 0, err
	}
	var p *AgentPolicy
	if c.opts.Policy != nil {
		p = c.opts.Policy()
	}
	if p == nil {
		return 0, &apperr.Error{Code: apperr.NotFound,
			Message: "no policy has been applied to this gateway yet"}
	}
	etag := `"` + p.Checksum + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified, nil
	}
	c.writeJSON(w, http.StatusOK, protocol.PolicyDocument{PolicyID: p.PolicyID, Version: p.Version, Checksum: p.Checksum, Content: p.Content})
	return http.StatusOK, nil
}

// parseWait reads the long-poll's wait parameter: a duration (25s) or
// whole seconds (25), 0 to MaxCommandWait; absent means 0.
func parseWait(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		if nerr != nil {
			return 0, validationError("wait", fmt.Sprintf("must be a duration such as 25s, not %q", v))
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 || d > MaxCommandWait {
		return 0, validationError("wait", fmt.Sprintf("must be between 0s and %s", MaxCommandWait))
	}
	return d, nil
}

// handleCommands long-polls an agent's commands.
func (c *Collector) handleCommands(w http.ResponseWriter, r *http.Request) (int, error) {
	uid, err := c.agentUID(r)
	if err != nil {
		return 0, err
	}
	wait, err := parseWait(r.URL.Query().Get("wait"))
	if err != nil {
		return 0, c.reject("validation", 0, err.(*apperr.Error))
	}
	c.agents.Seen(protocol.AgentRegistration{AgentUID: uid}, false)
	cmds := c.cmds.Poll(r.Context(), uid, wait)
	if r.Context().Err() != nil {
		return 499, nil
	}
	c.agents.Seen(protocol.AgentRegistration{AgentUID: uid}, false)
	list := protocol.AgentCommandList{Commands: cmds}
	if c.opts.Policy != nil {
		if p := c.opts.Policy(); p != nil {
			list.PolicyChecksum = p.Checksum
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	c.writeJSON(w, http.StatusOK, list)
	return http.StatusOK, nil
}

// handleCommandAck records an agent's acknowledgement: 204, 400 naming the
// field, 404 for a command not pending for this agent.
func (c *Collector) handleCommandAck(w http.ResponseWriter, r *http.Request) (int, error) {
	uid, err := c.agentUID(r)
	if err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return 0, c.reject("validation", 0, validationError("id", "must be a command id (UUID)"))
	}
	if err := c.requireType(r, "application/json"); err != nil {
		return 0, err
	}
	body, err := c.body(w, r, 64<<10)
	if err != nil {
		return 0, err
	}
	var ack protocol.AgentCommandAck
	if err := c.decodeJSON(body, &ack, 0); err != nil {
		return 0, err
	}
	switch {
	case ack.Status != protocol.AckCompleted && ack.Status != protocol.AckFailed:
		return 0, c.reject("validation", 0, validationError("status", fmt.Sprintf("must be completed or failed, not %q", ack.Status)))
	case ack.Status == protocol.AckFailed && ack.Error == "":
		return 0, c.reject("validation", 0, validationError("error", "is required when status is failed"))
	}
	if err := protocol.CheckText("error", ack.Error, false, 2000); err != nil {
		return 0, c.reject("validation", 0, fieldError(err))
	}
	if err := protocol.CheckText("policy_version", ack.PolicyVersion, false, protocol.MaxShortField); err != nil {
		return 0, c.reject("validation", 0, fieldError(err))
	}
	if err := c.cmds.Ack(uid, id, ack); err != nil {
		return 0, &apperr.Error{Code: apperr.NotFound, Field: "id",
			Message: "no such command is pending for agent " + uid}
	}
	// Recorded only for an acknowledgement that was accepted: a refused
	// one changes nothing.
	c.agents.Seen(protocol.AgentRegistration{AgentUID: uid, PolicyVersion: ack.PolicyVersion}, false)
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent, nil
}
