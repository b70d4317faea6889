package agentsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// The agents' control side (Options.Control): each agent fetches the
// gateway's policy with If-None-Match (at start, every PolicyInterval, when
// a command poll shows another checksum, and on a hot reload), reports the
// version it applied in its heartbeats and acknowledgements, long-polls its
// commands and carries them out:
//
//   - restart graceful: new requests wait, the one in flight finishes, then
//     the agent restarts (RestartDelay), registers again, fetches its policy
//     and acknowledges;
//   - restart forced: the request in flight is dropped at once (its events
//     are resent with the same ids after the restart, as a real agent that
//     keeps unacknowledged events on disk would), then as graceful;
//   - restart hot_reload: no restart; the policy is fetched again.
//
// A command id is carried out once: a redelivered id is acknowledged again
// with the first outcome (a real agent keeps these ids on disk).

// ControlEvent is one thing an agent did on the control side.
type ControlEvent struct {
	AgentUID string
	// Kind is policy_applied, restarted, hot_reloaded or command_acked.
	Kind          string
	PolicyVersion string
	CommandID     string
	Mode          string
}

// Control event kinds.
const (
	EventPolicyApplied = "policy_applied"
	EventRestarted     = "restarted"
	EventHotReloaded   = "hot_reloaded"
	EventCommandAcked  = "command_acked"
)

// ControlResult counts what the agents did on the control side.
type ControlResult struct {
	PolicyFetches   int64 `json:"policy_fetches"`
	NotModified     int64 `json:"policy_not_modified"`
	PoliciesApplied int64 `json:"policies_applied"`
	Restarts        int64 `json:"restarts"`
	HotReloads      int64 `json:"hot_reloads"`
	CommandsAcked   int64 `json:"commands_acked"`
}

type controlCounters struct {
	fetches, notModified, applied, restarts, reloads, acked atomic.Int64
}

func (c *controlCounters) result() ControlResult {
	return ControlResult{PolicyFetches: c.fetches.Load(), NotModified: c.notModified.Load(), PoliciesApplied: c.applied.Load(),
		Restarts: c.restarts.Load(), HotReloads: c.reloads.Load(), CommandsAcked: c.acked.Load()}
}

// maxRemembered bounds the command ids an agent remembers.
const maxRemembered = 256

// agentCtl is one agent's control state.
type agentCtl struct {
	mu         sync.Mutex
	inc        context.Context // the current incarnation; a forced restart cancels it
	cancelInc  context.CancelFunc
	restarting chan struct{} // non-nil while restarting; closed after
	inflight   sync.WaitGroup

	policyMu sync.Mutex // one policy fetch at a time
	version  atomic.Pointer[string]
	checksum atomic.Pointer[string]

	executed map[string]protocol.AgentCommandAck
	order    []string
}

func newAgentCtl(ctx context.Context) *agentCtl {
	c := &agentCtl{executed: map[string]protocol.AgentCommandAck{}}
	c.inc, c.cancelInc = context.WithCancel(ctx)
	empty := ""
	c.version.Store(&empty)
	c.checksum.Store(&empty)
	return c
}

// begin returns the context for one request to the gateway, waiting while
// a restart is under way; end must follow the request. ok is false when
// ctx ended.
func (c *agentCtl) begin(ctx context.Context) (context.Context, bool) {
	for {
		c.mu.Lock()
		if c.restarting == nil {
			c.inflight.Add(1)
			inc := c.inc
			c.mu.Unlock()
			return inc, true
		}
		ch := c.restarting
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false
		}
	}
}

func (c *agentCtl) end() { c.inflight.Done() }

func (c *agentCtl) remember(id string, ack protocol.AgentCommandAck) {
	if len(c.order) >= maxRemembered {
		delete(c.executed, c.order[0])
		c.order = c.order[1:]
	}
	c.executed[id] = ack
	c.order = append(c.order, id)
}

// controlClient is the HTTP client for long-polls (longer timeout).
func (r *run) controlClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2 * r.opts.Agents
	tr.TLSClientConfig = r.tls
	return &http.Client{Transport: tr, Timeout: r.opts.CommandWait + 15*time.Second}
}

func (r *run) observeControl(e ControlEvent) {
	if r.opts.ObserveControl != nil {
		r.opts.ObserveControl(e)
	}
}

// controlLoop runs an agent's control side until ctx ends: a goroutine for
// the periodic policy fetch and heartbeats, and the command long-poll here.
func (a *agent) controlLoop(ctx context.Context, client *http.Client) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.fetchPolicy(ctx)
		a.heartbeat(ctx)
		pt := time.NewTicker(a.r.opts.PolicyInterval)
		defer pt.Stop()
		ht := time.NewTicker(a.r.opts.HeartbeatInterval)
		defer ht.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-pt.C:
				a.fetchPolicy(ctx)
			case <-ht.C:
				a.heartbeat(ctx)
			}
		}
	}()
	defer wg.Wait()
	failures := 0
	for ctx.Err() == nil {
		list, err := a.poll(ctx, client)
		if err != nil {
			failures++
			select {
			case <-ctx.Done():
			case <-time.After(min(time.Duration(failures)*200*time.Millisecond, 2*time.Second)):
			}
			continue
		}
		failures = 0
		if list.PolicyChecksum != "" && list.PolicyChecksum != *a.ctl.checksum.Load() {
			a.fetchPolicy(ctx)
		}
		for _, cmd := range list.Commands {
			ack, done := a.ctl.executed[cmd.ID]
			if !done {
				ack = a.execute(ctx, cmd)
				if ctx.Err() != nil {
					return
				}
				a.ctl.remember(cmd.ID, ack)
			}
			a.ack(ctx, cmd, ack)
		}
	}
}

func (a *agent) poll(ctx context.Context, client *http.Client) (protocol.AgentCommandList, error) {
	var list protocol.AgentCommandList
	u := a.r.opts.GatewayURL + strings.Replace(protocol.PathAgentCommands, "{agent_uid}", a.uid, 1) +
		"?wait=" + a.r.opts.CommandWait.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return list, err
	}
	a.authorize(req)
	resp, err := client.Do(req)
	if err != nil {
		return list, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return list, &statusError{resp.StatusCode}
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	return list, err
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "gateway answered " + http.StatusText(e.code) }

// execute carries out one command and returns its acknowledgement.
func (a *agent) execute(ctx context.Context, cmd protocol.AgentCommand) protocol.AgentCommandAck {
	if cmd.Type != protocol.AgentCmdRestart {
		return protocol.AgentCommandAck{Status: protocol.AckFailed, Error: "unsupported command type " + cmd.Type}
	}
	var rs protocol.AgentRestart
	if err := json.Unmarshal(cmd.Payload, &rs); err != nil {
		return protocol.AgentCommandAck{Status: protocol.AckFailed, Error: "payload: " + err.Error()}
	}
	switch rs.Mode {
	case protocol.RestartHotReload:
		a.fetchPolicy(ctx)
		a.r.ctl.reloads.Add(1)
		a.r.observeControl(ControlEvent{AgentUID: a.uid, Kind: EventHotReloaded, PolicyVersion: *a.ctl.version.Load(), CommandID: cmd.ID, Mode: rs.Mode})
	case protocol.RestartGraceful, protocol.RestartForced:
		a.restart(ctx, rs.Mode == protocol.RestartForced)
		a.r.ctl.restarts.Add(1)
		a.r.observeControl(ControlEvent{AgentUID: a.uid, Kind: EventRestarted, PolicyVersion: *a.ctl.version.Load(), CommandID: cmd.ID, Mode: rs.Mode})
	default:
		return protocol.AgentCommandAck{Status: protocol.AckFailed, Error: "mode: unknown restart mode " + rs.Mode}
	}
	res, _ := json.Marshal(map[string]string{"mode": rs.Mode, "at": time.Now().UTC().Format(time.RFC3339Nano)})
	return protocol.AgentCommandAck{Status: protocol.AckCompleted, Result: res, PolicyVersion: *a.ctl.version.Load()}
}

// restart stops sending (forced: drops the request in flight), restarts,
// registers again and fetches the policy.
func (a *agent) restart(ctx context.Context, forced bool) {
	c := a.ctl
	c.mu.Lock()
	done := make(chan struct{})
	c.restarting = done
	if forced {
		c.cancelInc()
	}
	c.mu.Unlock()
	c.inflight.Wait() // graceful: the request in flight finishes; forced: it was cancelled
	c.cancelInc()
	select {
	case <-ctx.Done():
	case <-time.After(a.r.opts.RestartDelay):
	}
	a.register(ctx)
	a.fetchPolicy(ctx)
	c.mu.Lock()
	c.inc, c.cancelInc = context.WithCancel(ctx)
	c.restarting = nil
	close(done)
	c.mu.Unlock()
}

// ack acknowledges a command, retrying a few times while the gateway is
// unreachable (a command left unacknowledged is delivered again and then
// acknowledged from memory).
func (a *agent) ack(ctx context.Context, cmd protocol.AgentCommand, ack protocol.AgentCommandAck) {
	body, _ := json.Marshal(ack)
	u := a.r.opts.GatewayURL + strings.NewReplacer("{agent_uid}", a.uid, "{id}", cmd.ID).Replace(protocol.PathAgentCommandAck)
	for attempt := 0; attempt < 5 && ctx.Err() == nil; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		a.authorize(req)
		resp, err := a.r.opts.Client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				a.r.ctl.acked.Add(1)
				a.r.observeControl(ControlEvent{AgentUID: a.uid, Kind: EventCommandAcked, PolicyVersion: ack.PolicyVersion, CommandID: cmd.ID})
			}
			if resp.StatusCode/100 != 5 {
				return // 2xx, or 404: the gateway no longer waits for it
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
}

// fetchPolicy asks for the gateway's policy with If-None-Match and applies
// a new one after checking its checksum.
func (a *agent) fetchPolicy(ctx context.Context) {
	c := a.ctl
	c.policyMu.Lock()
	defer c.policyMu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.r.opts.GatewayURL+protocol.PathAgentPolicy, nil)
	if err != nil {
		return
	}
	a.authorize(req)
	if sum := *c.checksum.Load(); sum != "" {
		req.Header.Set("If-None-Match", `"`+sum+`"`)
	}
	a.r.ctl.fetches.Add(1)
	resp, err := a.r.opts.Client.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		a.r.ctl.notModified.Add(1)
		return
	case http.StatusOK:
	default:
		io.Copy(io.Discard, resp.Body)
		return
	}
	var doc protocol.PolicyDocument
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&doc); err != nil {
		return
	}
	sum, err := protocol.PolicyChecksum(doc.Content)
	if err != nil || sum != doc.Checksum || resp.Header.Get("ETag") != `"`+sum+`"` {
		a.r.log.Warn("agent: policy failed verification", "agent", a.uid, "version", doc.Version)
		return
	}
	v := doc.Version
	c.version.Store(&v)
	c.checksum.Store(&sum)
	a.r.ctl.applied.Add(1)
	a.r.observeControl(ControlEvent{AgentUID: a.uid, Kind: EventPolicyApplied, PolicyVersion: v})
	a.heartbeat(ctx) // report the applied version now
}

// heartbeat reports the agent's state, with the policy version it runs.
func (a *agent) heartbeat(ctx context.Context) {
	a.postJSON(ctx, protocol.PathAgentHeartbeat, a.registration())
}
