package protocol

import "time"

// API key rotation (the rotate_api_key command). The command carries no
// secret: the gateway executing it asks the cloud for a new key with its
// current key (PathGatewayKeyRotate), saves it, and confirms it with the new
// key (PathGatewayKeyConfirm). The first request made with the new key
// promotes it; the old key stops working at that moment.
const (
	// PathGatewayKeyRotate issues a pending key: POST, KeyRotateRequest →
	// KeyRotateResponse.
	PathGatewayKeyRotate = "/v2/gateway/keys/rotate"
	// PathGatewayKeyConfirm, called with the new key, checks that it is
	// the gateway's current key: POST, empty body → KeyConfirmResponse.
	PathGatewayKeyConfirm = "/v2/gateway/keys/confirm"
)

// Bounds of a rotation's overlap window, in seconds.
const (
	DefaultKeyOverlapSeconds = 3600
	MinKeyOverlapSeconds     = 60
	MaxKeyOverlapSeconds     = 7 * 24 * 3600
)

// ErrCodeKeyConflict (409) refuses a rotation step that does not fit the
// gateway's key state: rotating with a key that is no longer current,
// rotating for a command that is finished, or confirming a key that no
// rotation produced.
const ErrCodeKeyConflict = "key_conflict"

// RotateAPIKeyPayload is the payload of a rotate_api_key command. It holds
// no key.
type RotateAPIKeyPayload struct {
	// OverlapSeconds is how long the old key stays valid at least if the
	// gateway never uses the new one (default 3600, 60…604800).
	OverlapSeconds int `json:"overlap_seconds,omitempty"`
}

// RotateAPIKeyResult is the result of a completed rotate_api_key command:
// the new key's prefix, never the key.
type RotateAPIKeyResult struct {
	KeyPrefix string    `json:"key_prefix"`
	RotatedAt time.Time `json:"rotated_at"`
}

// KeyRotateRequest asks for a new key.
type KeyRotateRequest struct {
	// CommandID is the rotate_api_key command being executed (optional).
	// The cloud uses it to answer a re-run of a command whose rotation is
	// complete already with KeyStatusRotated instead of another key.
	CommandID string `json:"command_id,omitempty"`
	// OverlapSeconds as in RotateAPIKeyPayload (0: the default).
	OverlapSeconds int `json:"overlap_seconds,omitempty"`
}

// Statuses of a KeyRotateResponse.
const (
	// KeyStatusPending: APIKey is a new key, valid beside the current one
	// until it is used or the overlap passes. Save it, then use it.
	KeyStatusPending = "pending"
	// KeyStatusRotated: this command's rotation is complete; the key the
	// request was made with is the new one. Nothing to save.
	KeyStatusRotated = "rotated"
)

// KeyRotateResponse answers PathGatewayKeyRotate. APIKey is shown once and
// only with KeyStatusPending.
type KeyRotateResponse struct {
	Status    string     `json:"status"`
	APIKey    string     `json:"api_key,omitempty"`
	KeyPrefix string     `json:"key_prefix"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// KeyConfirmResponse answers PathGatewayKeyConfirm.
type KeyConfirmResponse struct {
	GatewayID string    `json:"gateway_id"`
	KeyPrefix string    `json:"key_prefix"`
	RotatedAt time.Time `json:"rotated_at"`
	// CommandID is the rotate_api_key command that produced the key, if any.
	CommandID string `json:"command_id,omitempty"`
}
