package protocol

import (
	"encoding/json"
	"time"
)

// Control channel paths (Agent API).
const (
	// PathGatewaySocket is the WebSocket control channel.
	PathGatewaySocket = "/v2/gateway/socket"
	// PathGatewayCommands is the REST fallback: GET long-polls for commands.
	PathGatewayCommands = "/v2/gateway/commands"
	// PathGatewayCommandAck is the REST fallback acknowledgement:
	// POST /v2/gateway/commands/{id}/ack.
	PathGatewayCommandAck = "/v2/gateway/commands/{id}/ack"
)

// ControlVersion is the version of the control envelope.
const ControlVersion = 1

// Control message types.
const (
	// MsgWelcome (cloud → gateway) opens a session.
	MsgWelcome = "welcome"
	// MsgHeartbeat (gateway → cloud) reports the gateway's state.
	MsgHeartbeat = "heartbeat"
	// MsgCommand (cloud → gateway) carries one command.
	MsgCommand = "command"
	// MsgCommandAck (gateway → cloud) acknowledges a command: received,
	// then completed or failed.
	MsgCommandAck = "command_ack"
	// MsgError (cloud → gateway) reports a message the cloud refused.
	MsgError = "error"
)

// Envelope is every control-channel message: a version, a type and the
// type's data. Unknown types are answered with MsgError and otherwise
// ignored, so that either side can be upgraded first.
type Envelope struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Welcome opens a session.
type Welcome struct {
	GatewayID                string `json:"gateway_id"`
	HeartbeatIntervalSeconds int    `json:"heartbeat_interval_seconds"`
}

// Heartbeat is the gateway's state, every heartbeat interval.
type Heartbeat struct {
	CPUPercent      float64           `json:"cpu_percent"`
	MemoryPercent   float64           `json:"memory_percent"`
	DiskPercent     float64           `json:"disk_percent"`
	BufferUsage     float64           `json:"buffer_usage"` // 0..1
	QueueDepth      int               `json:"queue_depth"`
	ConnectedAgents int               `json:"connected_agents"`
	Versions        map[string]string `json:"versions,omitempty"` // gateway, policy, ...
}

// Command is one command sent to a gateway.
type Command struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload"`
	Priority  int             `json:"priority"`
	Attempt   int             `json:"attempt"`
	ExpiresAt time.Time       `json:"expires_at"`
}

// Ack phases.
const (
	AckReceived  = "received"
	AckCompleted = "completed"
	AckFailed    = "failed"
)

// CommandAck acknowledges a command.
type CommandAck struct {
	CommandID string          `json:"command_id"`
	Phase     string          `json:"phase"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// CommandList answers the REST long-poll.
type CommandList struct {
	Commands []Command `json:"commands"`
}

// ControlError reports a refused control message.
type ControlError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
