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
	// Devices are the door terminals the gateway drives that the cloud
	// knows (a devices row id), with their state (issue 16).
	Devices []DeviceState `json:"devices,omitempty"`
}

// DeviceState is one door terminal's state in a heartbeat.
type DeviceState struct {
	// ID is the cloud's devices.id.
	ID int64 `json:"id"`
	// Status is one of DeviceStatuses(): online, offline (connecting or
	// stopped), error (backing off or isolated after failures),
	// auth_failed (the device refused the credentials).
	Status string `json:"status"`
	// Serial is what the device reported (empty before it first answered).
	Serial string `json:"serial,omitempty"`
	// LastEventAt is when the gateway last buffered one of its events.
	LastEventAt *time.Time `json:"last_event_at,omitempty"`
}

// Device statuses, as the cloud's devices.status stores them.
const (
	DeviceOnline     = "online"
	DeviceOffline    = "offline"
	DeviceError      = "error"
	DeviceAuthFailed = "auth_failed"
)

// DeviceStatuses lists the statuses a heartbeat may report.
func DeviceStatuses() []string {
	return []string{DeviceOnline, DeviceOffline, DeviceError, DeviceAuthFailed}
}

// Command is one command sent to a gateway.
type Command struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload"`
	Priority  int             `json:"priority"`
	Attempt   int             `json:"attempt"`
	ExpiresAt time.Time       `json:"expires_at"`
	// TraceParent is the W3C traceparent of the enqueuer's span (issue 19),
	// absent when the command was enqueued untraced; the gateway's work on
	// the command continues that trace. Optional: older peers ignore it.
	TraceParent string `json:"traceparent,omitempty"`
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
	// TraceParent is the W3C traceparent of the gateway's span for the
	// command (issue 19), so the cloud's recording of the outcome joins the
	// command's trace. Optional.
	TraceParent string `json:"traceparent,omitempty"`
}

// CommandList answers the REST long-poll.
type CommandList struct {
	Commands []Command `json:"commands"`
}

// ControlError (the data of MsgError) reports a refused control message:
// every inbound message the cloud refuses is answered with one, and the
// connection stays up.
type ControlError struct {
	// Code is one of the ErrCode values: malformed_body (not a JSON
	// envelope), validation_failed (a bad field, an unknown type or
	// version, or a value the database refuses), not_found (an
	// acknowledgement for a command this gateway does not have),
	// too_large (a message over the size limit), unavailable (the cloud
	// could not record it just now).
	Code    string `json:"code"`
	Message string `json:"message"`
	// Type is the refused message's type, when it could be read.
	Type string `json:"type,omitempty"`
	// Field is the JSON path of the offending field within the envelope
	// (e.g. "data.queue_depth"), when one field is at fault.
	Field string `json:"field,omitempty"`
	// CommandID is the command an acknowledgement named.
	CommandID string `json:"command_id,omitempty"`
	// Retryable is true when the same message sent again later may be
	// accepted (a transient failure in the cloud); false when it never
	// will.
	Retryable bool `json:"retryable"`
}
