package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
	"github.com/staffcontrol/staffcontrol/internal/edge/collector"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/control"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/edge/health"
	"github.com/staffcontrol/staffcontrol/internal/edge/keyrotate"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// The control plane, once the gateway has its credentials: a Keyring that
// every cloud client asks for the current key, the executor (ledger and
// current policy in ControlDir), and the control client (WebSocket, REST
// fallback) that feeds it commands and sends heartbeats built from the
// gateway's real state.

// HandlerFactory builds extra executor handlers (command type → handler)
// once the gateway has its credentials. It gets the gateway's Keyring (the
// current API key; Replace rotates it for every client at once) and the
// HTTP client towards the cloud (TLS configured). Set Gateway.ExtraHandlers
// to one before Start. The built-in policy_update, restart_agent and
// rotate_api_key cannot be replaced.
type HandlerFactory func(k *enroll.Keyring, client *http.Client) map[string]executor.Handler

// ControlDir is where the executor keeps its ledger (commands.sqlite) and
// the current policy (policy.json): beside the buffer.
func ControlDir(cfg *config.Config) string {
	return filepath.Join(filepath.Dir(cfg.Buffer.Path), "control")
}

// SocketURL is the control channel's URL: server.control_url, or derived
// from server.url (http→ws, https→wss, + /v2/gateway/socket).
func SocketURL(cfg *config.Config) string {
	if cfg.Server.ControlURL != "" {
		return cfg.Server.ControlURL
	}
	u := strings.TrimRight(cfg.Server.URL, "/")
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	return u + protocol.PathGatewaySocket
}

// keyFileFor is the key file a Keyring persists rotations to: the gateway's
// key file when the key came from it (or from provisioning, which wrote
// it), "" when the key came from organization.api_key.
func keyFileFor(cfg *config.Config) string {
	if c, err := enroll.Load(KeyFilePath(cfg)); err == nil && c != nil {
		return KeyFilePath(cfg)
	}
	return ""
}

// apiKey is the current API key ("" before enrolment).
func (g *Gateway) apiKey() string {
	if k := g.keyring.Load(); k != nil {
		return k.APIKey()
	}
	return ""
}

// openControl opens the executor and builds the control client over the
// gateway's keyring; the caller runs the client.
func (g *Gateway) openControl(k *enroll.Keyring) (*control.Client, error) {
	cfg := g.cfg
	handlers := map[string]executor.Handler{}
	if g.ExtraHandlers != nil {
		for t, h := range g.ExtraHandlers(k, g.client) {
			handlers[t] = h
		}
	}
	handlers[protocol.CommandRotateAPIKey] = keyrotate.Handler(k, g.client, cfg.Server.URL, g.log.With("component", "keyrotate"))
	handlers[protocol.CommandRestartAgent] = executor.RestartAgentHandler(executor.RestartOptions{
		Agents: g.col.Agents(), Commands: g.col.AgentCommands(), Timeout: cfg.Control.RestartTimeout})
	handlers[protocol.CommandReplayDeadLetters] = replayDeadLettersHandler(g.buf)
	handlers[protocol.CommandRevokeAgent] = executor.RevokeAgentHandler(g.auth.Revoke)
	ex, err := executor.Open(executor.Options{Dir: ControlDir(cfg), BaseURL: cfg.Server.URL, APIKey: k.APIKey, Client: g.client,
		Handlers: handlers})
	if err != nil {
		return nil, err
	}
	g.exec.Store(ex)
	c := control.New(control.Options{
		SocketURL:      SocketURL(cfg),
		BaseURL:        cfg.Server.URL,
		APIKey:         k.APIKey,
		TLS:            cloudclient.TLSConfig(g.client),
		Heartbeat:      g.heartbeat,
		Execute:        ex.Execute,
		BackoffInitial: cfg.Control.BackoffInitial,
		BackoffMax:     cfg.Control.BackoffMax,
		FallbackAfter:  cfg.Control.FallbackAfter,
		FallbackFor:    cfg.Control.FallbackFor,
		Logger:         g.log.With("component", "control"),
	})
	g.ctl.Store(c)
	return c, nil
}

// replayDeadLettersHandler moves the dead letters named by the payload's
// event_ids (all when none) back into their streams with new sequence
// numbers; the result is {"replayed": n}.
func replayDeadLettersHandler(buf *buffer.Buffer) executor.Handler {
	return func(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
		var p protocol.ReplayDeadLettersPayload
		if len(cmd.Payload) > 0 && string(cmd.Payload) != "null" {
			if err := json.Unmarshal(cmd.Payload, &p); err != nil {
				return nil, fmt.Errorf("replay_dead_letters: payload: event_ids must be a list of event ids: %w", err)
			}
		}
		for i, id := range p.EventIDs {
			c, ok := protocol.CanonicalEventID(id)
			if !ok {
				return nil, fmt.Errorf("replay_dead_letters: payload: event_ids[%d] %q is not a UUID", i, id)
			}
			p.EventIDs[i] = c
		}
		n, err := buf.ReplayDeadLetters(ctx, p.EventIDs)
		if err != nil {
			return nil, fmt.Errorf("replay_dead_letters: %w", err)
		}
		return json.Marshal(protocol.ReplayDeadLettersResult{Replayed: n})
	}
}

// agentPolicy is the collector's view of the executor's current policy.
func (g *Gateway) agentPolicy() *collector.AgentPolicy {
	ex := g.exec.Load()
	if ex == nil {
		return nil
	}
	p := ex.CurrentPolicy()
	if p == nil {
		return nil
	}
	return &collector.AgentPolicy{PolicyID: p.PolicyID, Version: p.Version, Checksum: p.Checksum, Content: p.Content}
}

// controlStatus is the control plane's part of /health/details.
func (g *Gateway) controlStatus() *health.ControlStatus {
	s := &health.ControlStatus{Mode: "disconnected", AgentCommandsPending: g.col.AgentCommands().Pending()}
	if c := g.ctl.Load(); c != nil {
		s.Mode, s.CommandsExecuted = c.Mode(), c.Commands()
	}
	if p := g.agentPolicy(); p != nil {
		s.PolicyVersion, s.PolicyChecksum = p.Version, p.Checksum
	}
	return s
}

// heartbeat reports the gateway's state to the cloud.
func (g *Gateway) heartbeat() protocol.Heartbeat {
	hb := protocol.Heartbeat{
		BufferUsage:     g.buf.Usage(),
		ConnectedAgents: g.col.Agents().Connected(),
		Versions:        map[string]string{"gateway": g.version},
	}
	for _, s := range buffer.Streams() {
		rows, _ := g.buf.Unclaimed(s)
		hb.QueueDepth += int(rows)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := g.buf.Stats(ctx); err == nil {
		hb.DiskPercent = st.FSUsage * 100
		depth := int64(0)
		for _, classes := range st.Tables {
			for _, c := range classes {
				depth += c.Rows
			}
		}
		hb.QueueDepth = int(depth)
	}
	hb.CPUPercent = g.host.cpuPercent()
	hb.MemoryPercent = memoryPercent()
	if p := g.agentPolicy(); p != nil {
		hb.Versions["policy"] = p.Version
	}
	return hb
}

// registerControlMetrics exposes the control plane's state.
func (g *Gateway) registerControlMetrics() {
	for _, m := range []string{"websocket", "rest", "disconnected"} {
		g.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "gateway_control_mode",
			Help:        "1 for the control channel's current mode (websocket, rest, disconnected), 0 for the others.",
			ConstLabels: prometheus.Labels{"mode": m},
		}, func() float64 {
			mode := "disconnected"
			if c := g.ctl.Load(); c != nil {
				mode = c.Mode()
			}
			if mode == m {
				return 1
			}
			return 0
		}))
	}
	g.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gateway_control_commands_total",
		Help: "Commands handled by the executor (redelivered ones answered from the ledger included).",
	}, func() float64 {
		if c := g.ctl.Load(); c != nil {
			return float64(c.Commands())
		}
		return 0
	}), policyInfo{g})
}

// policyInfo is gateway_policy_info{version,checksum} 1 for the current
// policy (absent before one is applied).
type policyInfo struct{ g *Gateway }

var policyInfoDesc = prometheus.NewDesc("gateway_policy_info", "The policy the gateway serves to its agents (value 1).", []string{"version", "checksum"}, nil)

// Describe implements prometheus.Collector.
func (p policyInfo) Describe(ch chan<- *prometheus.Desc) { ch <- policyInfoDesc }

// Collect implements prometheus.Collector.
func (p policyInfo) Collect(ch chan<- prometheus.Metric) {
	if pol := p.g.agentPolicy(); pol != nil {
		ch <- prometheus.MustNewConstMetric(policyInfoDesc, prometheus.GaugeValue, 1, pol.Version, pol.Checksum)
	}
}

// hostCPU turns /proc/stat samples into the CPU share used between two
// heartbeats (0 where /proc is missing).
type hostCPU struct {
	mu          sync.Mutex
	busy, total uint64
}

func (h *hostCPU) cpuPercent() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var total, idle uint64
	for i, v := range f[1:] {
		n := parseUint(v)
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	busy := total - idle
	h.mu.Lock()
	defer h.mu.Unlock()
	pb, pt := h.busy, h.total
	h.busy, h.total = busy, total
	if pt == 0 || total <= pt || busy < pb {
		if total == 0 {
			return 0
		}
		return 100 * float64(busy) / float64(total) // since boot, for the first sample
	}
	return 100 * float64(busy-pb) / float64(total-pt)
}

// memoryPercent is the share of memory not available (/proc/meminfo).
func memoryPercent() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var total, avail uint64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total = parseUint(f[1])
		case "MemAvailable:":
			avail = parseUint(f[1])
		}
	}
	if total == 0 || avail > total {
		return 0
	}
	return 100 * float64(total-avail) / float64(total)
}

func parseUint(s string) uint64 {
	var n uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return n
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}
