package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/edge/collector"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/control"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/edge/health"
	"github.com/staffcontrol/staffcontrol/internal/edge/keyrotate"
	"github.com/staffcontrol/staffcontrol/internal/edge/uplink"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
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

// onlineParts builds the cloud-facing parts over the keyring k, once the
// gateway has its credentials (see enrolment.go): the executor with its
// handlers (the extra ones from Deps.ExtraHandlers first; the built-in
// ones cannot be replaced), the uplink and the control client, as a group
// in that order. The control plane is optional:
// when the executor's ledger does not open, data still goes up.
func (g *Gateway) onlineParts(k *enroll.Keyring, creds *enroll.Credentials) (*online, error) {
	cfg := g.cfg
	on := &online{}
	var members []lifecycle.Member
	handlers := map[string]executor.Handler{}
	if g.extra != nil {
		for t, h := range g.extra(k, g.client) {
			handlers[t] = h
		}
	}
	handlers[protocol.CommandRotateAPIKey] = keyrotate.Handler(k, g.client, cfg.Server.URL, g.log.With("component", "keyrotate"))
	handlers[protocol.CommandRestartAgent] = executor.RestartAgentHandler(executor.RestartOptions{
		Agents: g.col.Agents(), Commands: g.col.AgentCommands(), Timeout: cfg.Control.RestartTimeout})
	handlers[protocol.CommandReplayDeadLetters] = replayDeadLettersHandler(g.buf)
	handlers[protocol.CommandRevokeAgent] = executor.RevokeAgentHandler(g.auth.Revoke)
	handlers[protocol.CommandDeviceCommand] = deviceCommandHandler(g.devices, cfg.Device.CommandTimeout)
	handlers[protocol.CommandDevicesUpdate] = devicesUpdateHandler(g.deviceLists)
	ex, err := executor.Open(executor.Options{Dir: ControlDir(cfg), BaseURL: cfg.Server.URL, APIKey: k.APIKey, Client: g.client,
		Handlers: handlers, TracerProvider: g.tp, OnPolicy: g.applyLogPolicy})
	if err != nil {
		g.log.Error("ALERT: control plane not started; commands and policies will not arrive", "err", err)
	} else {
		on.exec = ex
		on.ctl = control.New(control.Options{
			Config:    cfg.Control.Config,
			SocketURL: SocketURL(cfg),
			BaseURL:   cfg.Server.URL,
			APIKey:    k.APIKey,
			TLS:       g.cloudTLS,
			Heartbeat: g.heartbeat,
			Execute:   ex.Execute,
			Logger:    g.log.With("component", "control"),
			// Each command's span continues its enqueuer's trace.
			TracerProvider: g.tp,
		})
	}
	on.up, err = uplink.New(g.buf, uplink.Options{
		Config:     cfg.Uplink,
		ServerURL:  cfg.Server.URL,
		KeyFunc:    k.APIKey,
		GatewayID:  creds.GatewayID,
		Client:     g.client,
		Logger:     g.log.With("component", "uplink"),
		Registerer: g.reg,
		// Uploads continue the agent batches' traces.
		TracerProvider: g.tp,
	})
	if err != nil {
		if ex != nil {
			_ = ex.Close()
		}
		return nil, err
	}
	if on.exec != nil {
		members = append(members, lifecycle.Member{Name: "executor", Service: on.exec})
	}
	members = append(members, lifecycle.Member{Name: "uplink", Service: on.up})
	if on.ctl != nil {
		members = append(members, lifecycle.Member{Name: "control client", Service: on.ctl})
	}
	on.group = lifecycle.NewGroup(g.log, members...)
	return on, nil
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
	on := g.enrol.online()
	if on == nil || on.exec == nil {
		return nil
	}
	p := on.exec.CurrentPolicy()
	if p == nil {
		return nil
	}
	return &collector.AgentPolicy{PolicyID: p.PolicyID, Version: p.Version, Checksum: p.Checksum, Content: p.Content}
}

// applyLogPolicy sets the log scrubber's title switch from a policy's
// privacy.mask_window_titles (the executor calls it at open and after
// each applied policy).
func (g *Gateway) applyLogPolicy(content json.RawMessage) {
	if g.titles == nil {
		return
	}
	var p struct {
		Privacy struct {
			MaskWindowTitles bool `json:"mask_window_titles"`
		} `json:"privacy"`
	}
	if err := json.Unmarshal(content, &p); err != nil {
		g.log.Warn("policy content unreadable; window titles masked in logs", "err", err)
		g.titles.Set(true)
		return
	}
	g.titles.Set(p.Privacy.MaskWindowTitles)
}

// controlStatus is the control plane's part of /health/details.
func (g *Gateway) controlStatus() *health.ControlStatus {
	s := &health.ControlStatus{AgentCommandsPending: g.col.AgentCommands().Pending()}
	s.Mode, s.CommandsExecuted = g.enrol.controlMode()
	if p := g.agentPolicy(); p != nil {
		s.PolicyVersion, s.PolicyChecksum = p.Version, p.Checksum
	}
	return s
}

// heartbeatStatsTimeout bounds the buffer statistics a heartbeat reads.
const heartbeatStatsTimeout = 5 * time.Second

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
	ctx, cancel := context.WithTimeout(context.Background(), heartbeatStatsTimeout)
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
	hb.MemoryPercent = g.host.memoryPercent()
	if p := g.agentPolicy(); p != nil {
		hb.Versions["policy"] = p.Version
	}
	hb.Devices = deviceStates(g.devices.Statuses())
	return hb
}

// deviceStates are the heartbeat's states of the devices the cloud knows
// (those with a devices row id), at most protocol.MaxDevicesPerGateway.
func deviceStates(sts []devices.Status) []protocol.DeviceState {
	var out []protocol.DeviceState
	for _, st := range sts {
		if st.ID <= 0 || len(out) == protocol.MaxDevicesPerGateway {
			continue
		}
		status := protocol.DeviceOffline // connecting, stopped
		switch st.State {
		case devices.StateOnline:
			status = protocol.DeviceOnline
		case devices.StateBackoff, devices.StateIsolated:
			status = protocol.DeviceError
		case devices.StateAuthFailed:
			status = protocol.DeviceAuthFailed
		}
		out = append(out, protocol.DeviceState{ID: st.ID, Status: status, Serial: st.Serial, LastEventAt: st.LastEventAt})
	}
	return out
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
