// Package protocol is the wire contract shared by the edge (Agent Gateway) and
// the cloud (Agent API): the JSON bodies desktop agents send to a gateway, the
// batches a gateway uploads to the cloud, their responses, header names,
// paths, the drop report and the provisioning exchange. docs/protocol.md
// describes every message in prose; this package is its executable form.
//
// The package holds data types, constants and validation only. It imports
// nothing from edge or cloud code, so both sides can depend on it.
package protocol

import (
	"time"
)

// Header names used between gateway and cloud and between agents and gateway.
const (
	// HeaderAPIKey carries the gateway's API key on every gateway → cloud
	// request except provisioning.
	HeaderAPIKey = "X-API-Key"
	// HeaderIdempotencyKey carries the batch idempotency token (a UUID) on
	// every ingest request. Semantics follow the IETF Idempotency-Key draft.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderGatewayID names the sending gateway (informational; the cloud
	// authenticates by API key and ignores a mismatching value).
	HeaderGatewayID = "X-Gateway-Id"
	// HeaderFallbackMode is set by the cloud on ingest responses: "true" when
	// the batch went to the fallback partitions, "false" otherwise.
	HeaderFallbackMode = "X-Fallback-Mode"
	// HeaderRetryAfter is the standard Retry-After header (seconds).
	HeaderRetryAfter = "Retry-After"
	// HeaderBufferUsage is set by the gateway on collector responses: the
	// buffer usage ratio (0..1) with two decimals.
	HeaderBufferUsage = "X-Buffer-Usage"
)

// Cloud (Agent API) paths used by a gateway.
const (
	PathIngestLogs         = "/v2/ingest/logs"
	PathIngestScreenshots  = "/v2/ingest/screenshots"
	PathIngestDeviceEvents = "/v2/ingest/device-events"
	PathGatewayProvision   = "/v2/gateway/provision"
	PathGatewayPing        = "/v2/gateway/ping"
)

// Gateway (collector) paths used by desktop agents.
const (
	PathAgentRegister   = "/v1/agents/register"
	PathAgentHeartbeat  = "/v1/agents/heartbeat"
	PathAgentEvents     = "/v1/events"
	PathAgentScreenshot = "/v1/screenshots"
)

// Event types carried by agent events.
const (
	TypeActiveWindow = "active_window"
	TypeVisitedSite  = "visited_site"
	TypeUserSession  = "user_session"
	TypeScreenshot   = "screenshot"
)

// Session types of a user_session event.
const (
	SessionLogin  = "login"
	SessionLogout = "logout"
	SessionLock   = "lock"
	SessionUnlock = "unlock"
)

// Field size limits (characters or bytes), mirrored by the cloud schema.
const (
	MaxShortField = 255
	MaxTitleField = 500
	MaxURLField   = 1000
)

// Event is one desktop-agent event. Agents send it to the gateway (without
// Seq and ReceivedAt); the gateway uploads it to the cloud with EventID, Seq
// and ReceivedAt always set. Type-specific fields are empty for other types.
type Event struct {
	// EventID is a UUID, stable across retries (UUIDv7 preferred). Optional
	// from an agent; the gateway assigns a UUIDv7 when absent.
	EventID string `json:"event_id,omitempty"`
	// Seq is the gateway's monotonic sequence number (gateway → cloud only).
	Seq int64 `json:"seq,omitempty"`
	// Type is one of active_window, visited_site, user_session, screenshot.
	Type string `json:"type"`
	// AgentUID identifies the agent installation.
	AgentUID string `json:"agent_uid"`
	// ComputerName is the PC's name (stored by the cloud as computer_uid).
	ComputerName string `json:"computer_name"`
	// UserSID is the Windows security identifier of the signed-in user.
	UserSID string `json:"user_sid"`
	// Datetime is when the event happened (RFC 3339).
	Datetime time.Time `json:"datetime"`
	// DurationSeconds is how long the window or site was active.
	DurationSeconds *int64 `json:"duration_seconds,omitempty"`
	// ReceivedAt is when the gateway committed the event (gateway → cloud).
	ReceivedAt *time.Time `json:"received_at,omitempty"`

	// WindowTitle (active_window).
	WindowTitle string `json:"window_title,omitempty"`
	// ProcessName (active_window, required there).
	ProcessName string `json:"process_name,omitempty"`
	// URL (visited_site required; active_window optional).
	URL string `json:"url,omitempty"`
	// Title (visited_site).
	Title string `json:"title,omitempty"`
	// SessionType (user_session): login, logout, lock, unlock.
	SessionType string `json:"session_type,omitempty"`
	// Screenshot describes the image of a screenshot event.
	Screenshot *Screenshot `json:"screenshot,omitempty"`
}

// Screenshot is the metadata of a screenshot image. The bytes travel beside
// it: a multipart part at the collector and at the cloud.
type Screenshot struct {
	// SHA256 is the lower-case hex SHA-256 of the image bytes.
	SHA256 string `json:"sha256"`
	// Size is the image size in bytes.
	Size int64 `json:"size"`
	// ContentType is image/png, image/jpeg or image/webp.
	ContentType string `json:"content_type"`
	// Width and Height in pixels (optional).
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
}

// EventBatch is the body of POST /v1/events (agent → gateway). AgentUID and
// ComputerName at batch level fill events that leave them empty.
type EventBatch struct {
	AgentUID     string  `json:"agent_uid"`
	ComputerName string  `json:"computer_name"`
	Events       []Event `json:"events"`
}

// EventAck is one event's outcome in an EventBatchResponse.
type EventAck struct {
	EventID string `json:"event_id"`
	// Seq is the sequence number assigned now; 0 when Duplicate.
	Seq int64 `json:"seq,omitempty"`
	// Duplicate is true when the gateway already held this event id.
	Duplicate bool `json:"duplicate,omitempty"`
}

// EventBatchResponse answers POST /v1/events and POST /v1/screenshots with
// 200 once every event is committed to the gateway's buffer.
type EventBatchResponse struct {
	Accepted   int        `json:"accepted"`
	Duplicates int        `json:"duplicates"`
	Events     []EventAck `json:"events"`
}

// AgentRegistration is the body of POST /v1/agents/register and
// POST /v1/agents/heartbeat.
type AgentRegistration struct {
	AgentUID      string `json:"agent_uid"`
	ComputerName  string `json:"computer_name"`
	UserSID       string `json:"user_sid,omitempty"`
	AgentVersion  string `json:"agent_version,omitempty"`
	OSVersion     string `json:"os_version,omitempty"`
	PolicyVersion string `json:"policy_version,omitempty"`
}

// AgentRegistrationResponse answers register and heartbeat.
type AgentRegistrationResponse struct {
	GatewayID                string `json:"gateway_id,omitempty"`
	HeartbeatIntervalSeconds int    `json:"heartbeat_interval_seconds"`
	// BufferLevel is normal, warning or critical; agents slow down or keep
	// data locally at critical.
	BufferLevel string `json:"buffer_level"`
}

// ErrorResponse is the body of every 4xx and 5xx answer, from gateway and
// cloud alike.
type ErrorResponse struct {
	// Error is a stable machine code, e.g. validation_failed.
	Error string `json:"error"`
	// Field names the offending field (JSON path, e.g. events[3].user_sid).
	Field string `json:"field,omitempty"`
	// Message is a human-readable explanation.
	Message string `json:"message"`
}

// Error codes used in ErrorResponse.Error.
const (
	ErrCodeValidation      = "validation_failed"
	ErrCodeMalformed       = "malformed_body"
	ErrCodeTooLarge        = "too_large"
	ErrCodeUnsupportedType = "unsupported_media_type"
	ErrCodeBufferFull      = "buffer_full"
	ErrCodeShedding        = "shedding_screenshots"
	ErrCodeUnauthorized    = "unauthorized"
	ErrCodeIdemMismatch    = "idempotency_key_reused"
	ErrCodeIdemInFlight    = "idempotency_key_in_flight"
	ErrCodeIdemMissing     = "idempotency_key_missing"
	ErrCodeInternal        = "internal"
	ErrCodeUnavailable     = "unavailable"
	ErrCodeNotFound        = "not_found"
)
