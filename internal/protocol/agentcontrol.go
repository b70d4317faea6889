package protocol

import (
	"encoding/json"
	"time"
)

// Agent control paths (gateway collector, agent ↔ gateway).
const (
	// PathAgentPolicy serves the gateway's current policy to its agents,
	// with ETag "<checksum>"; If-None-Match with it answers 304.
	PathAgentPolicy = "/v1/agents/policy"
	// PathAgentCommands long-polls an agent's pending commands:
	// GET /v1/agents/{agent_uid}/commands?wait=25s.
	PathAgentCommands = "/v1/agents/{agent_uid}/commands"
	// PathAgentCommandAck acknowledges one agent command:
	// POST /v1/agents/{agent_uid}/commands/{id}/ack.
	PathAgentCommandAck = "/v1/agents/{agent_uid}/commands/{id}/ack"
)

// Agent command types.
const (
	// AgentCmdRestart asks an agent to restart (payload AgentRestart).
	AgentCmdRestart = "restart"
)

// Restart modes of restart_agent and of the agent restart command.
const (
	// RestartGraceful: finish the request in flight, stop sending, restart
	// and register again.
	RestartGraceful = "graceful"
	// RestartForced: drop the request in flight at once (its events are
	// kept and resent with the same ids), restart and register again.
	RestartForced = "forced"
	// RestartHotReload: no restart; fetch and apply the current policy.
	RestartHotReload = "hot_reload"
)

// AgentCommand is one command for one agent.
type AgentCommand struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// AgentRestart is the payload of an AgentCmdRestart command.
type AgentRestart struct {
	Mode   string `json:"mode"`
	Reason string `json:"reason,omitempty"`
}

// AgentCommandList answers the agent's long-poll. PolicyChecksum is the
// checksum of the gateway's current policy ("" when it has none), so an
// agent notices a new policy on its next poll without waiting for its
// periodic policy fetch.
type AgentCommandList struct {
	Commands       []AgentCommand `json:"commands"`
	PolicyChecksum string         `json:"policy_checksum,omitempty"`
}

// AgentCommandAck acknowledges an agent command once it was carried out
// (for a restart: after the agent restarted and registered again).
// Status is AckCompleted or AckFailed; PolicyVersion is the policy version
// the agent runs after the command.
type AgentCommandAck struct {
	Status        string          `json:"status"`
	Result        json.RawMessage `json:"result,omitempty"`
	Error         string          `json:"error,omitempty"`
	PolicyVersion string          `json:"policy_version,omitempty"`
}
