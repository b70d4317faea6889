package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/collector"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// DefaultRestartTimeout is how long restart_agent waits for the agents'
// confirmations unless its payload says otherwise.
const DefaultRestartTimeout = 2 * time.Minute

// maxRestartTimeout bounds the payload's timeout_seconds (the cloud gives a
// received command 10 minutes to complete).
const maxRestartTimeout = 10 * time.Minute

// RestartOptions configure the restart_agent handler.
type RestartOptions struct {
	// Agents is the collector's registry: "all" means the agents connected
	// now; a named agent must be known to it.
	Agents *collector.Agents
	// Commands carries the restart to the agents (their long-poll) and
	// their confirmations back.
	Commands *collector.AgentCommands
	// Timeout is the default wait for confirmations (DefaultRestartTimeout).
	Timeout time.Duration
}

// restartPayload is restart_agent's payload as the cloud sends it
// ({"agent": "all" | "<uid>", "mode": …, "reason": …}); agent_uid is
// accepted as an alias of agent, and "*" or empty mean all.
type restartPayload struct {
	Agent          string `json:"agent"`
	AgentUID       string `json:"agent_uid"`
	Mode           string `json:"mode"`
	Reason         string `json:"reason"`
	TimeoutSeconds int    `json:"timeout_seconds"`
}

// RestartResult is restart_agent's result: one outcome per agent.
type RestartResult struct {
	Mode      string           `json:"mode"`
	Confirmed int              `json:"confirmed"`
	Failed    int              `json:"failed"`
	Agents    []RestartOutcome `json:"agents"`
}

// RestartOutcome is one agent's part of a restart_agent command.
type RestartOutcome struct {
	AgentUID string `json:"agent_uid"`
	// Status is confirmed (the agent acknowledged completion), failed (it
	// reported a failure) or timeout (no confirmation in time).
	Status        string `json:"status"`
	Error         string `json:"error,omitempty"`
	PolicyVersion string `json:"policy_version,omitempty"`
}

// RestartAgentHandler returns the restart_agent handler. It queues a
// restart command for the named agent (or every connected agent), waits
// for each agent's confirmation (bounded by the payload's timeout_seconds
// or the default) and completes when every agent confirmed; otherwise it
// fails naming the agents that did not. A gateway crash while it waits
// loses the in-memory agent queue, but the command is not in the ledger
// yet, so the cloud's redelivery runs it again.
func RestartAgentHandler(o RestartOptions) Handler {
	if o.Timeout <= 0 {
		o.Timeout = DefaultRestartTimeout
	}
	return func(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
		var p restartPayload
		if len(cmd.Payload) > 0 {
			if err := json.Unmarshal(cmd.Payload, &p); err != nil {
				return nil, fmt.Errorf("restart_agent: payload: %w", err)
			}
		}
		target := p.Agent
		if target == "" {
			target = p.AgentUID
		} else if p.AgentUID != "" && p.AgentUID != target {
			return nil, fmt.Errorf("restart_agent: agent: %q and agent_uid %q disagree", p.Agent, p.AgentUID)
		}
		switch p.Mode {
		case "":
			p.Mode = protocol.RestartGraceful
		case protocol.RestartGraceful, protocol.RestartForced, protocol.RestartHotReload:
		default:
			return nil, fmt.Errorf("restart_agent: mode: must be graceful, forced or hot_reload, not %q", p.Mode)
		}
		timeout := o.Timeout
		if p.TimeoutSeconds != 0 {
			if p.TimeoutSeconds < 0 || time.Duration(p.TimeoutSeconds)*time.Second > maxRestartTimeout {
				return nil, fmt.Errorf("restart_agent: timeout_seconds: must be between 1 and %d", int(maxRestartTimeout/time.Second))
			}
			timeout = time.Duration(p.TimeoutSeconds) * time.Second
		}
		var uids []string
		switch target {
		case "", "*", "all":
			uids = o.Agents.ConnectedUIDs()
		default:
			if _, ok := o.Agents.Lookup(target); !ok {
				return nil, fmt.Errorf("restart_agent: agent: unknown agent %q (never seen by this gateway)", target)
			}
			uids = []string{target}
		}
		return restartAgents(ctx, o.Commands, uids, protocol.AgentRestart{Mode: p.Mode, Reason: p.Reason}, timeout)
	}
}

// restartAgents queues the restart for every agent and collects the
// confirmations until all came or the timeout passed.
func restartAgents(ctx context.Context, q *collector.AgentCommands, uids []string, rs protocol.AgentRestart, timeout time.Duration) (json.RawMessage, error) {
	type waiting struct {
		idx     int
		uid, id string
		done    <-chan protocol.AgentCommandAck
	}
	res := RestartResult{Mode: rs.Mode, Agents: make([]RestartOutcome, len(uids))}
	ws := make([]waiting, 0, len(uids))
	for i, uid := range uids {
		res.Agents[i] = RestartOutcome{AgentUID: uid, Status: "timeout"}
		id, done, err := q.Enqueue(uid, protocol.AgentCmdRestart, rs)
		if err != nil {
			res.Agents[i].Status, res.Agents[i].Error = "failed", err.Error()
			continue
		}
		ws = append(ws, waiting{idx: i, uid: uid, id: id, done: done})
	}
	record := func(idx int, ack protocol.AgentCommandAck) {
		res.Agents[idx].PolicyVersion = ack.PolicyVersion
		if ack.Status == protocol.AckCompleted {
			res.Agents[idx].Status = "confirmed"
		} else {
			res.Agents[idx].Status, res.Agents[idx].Error = "failed", ack.Error
		}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for i, w := range ws {
		select {
		case ack := <-w.done:
			record(w.idx, ack)
		case <-timer.C:
			// Take whatever else arrived, then give up on the rest.
			for _, rest := range ws[i:] {
				select {
				case ack := <-rest.done:
					record(rest.idx, ack)
				default:
					q.Cancel(rest.uid, rest.id)
					res.Agents[rest.idx].Error = "no confirmation within " + timeout.String()
				}
			}
			return finishRestart(res)
		case <-ctx.Done():
			for _, rest := range ws[i:] {
				q.Cancel(rest.uid, rest.id)
			}
			return nil, ctx.Err()
		}
	}
	return finishRestart(res)
}

func finishRestart(res RestartResult) (json.RawMessage, error) {
	var bad []string
	for _, a := range res.Agents {
		if a.Status == "confirmed" {
			res.Confirmed++
			continue
		}
		res.Failed++
		bad = append(bad, fmt.Sprintf("%s (%s: %s)", a.AgentUID, a.Status, a.Error))
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return out, errors.New("restart_agent: " + fmt.Sprint(len(bad)) + " of " + fmt.Sprint(len(res.Agents)) +
			" agents did not confirm the " + res.Mode + " restart: " + strings.Join(bad, ", "))
	}
	return out, nil
}
