package protocol

import (
	"time"
)

// LogBatch is the decoded body of POST /v2/ingest/logs (gateway → cloud),
// sent as gzip-compressed JSON. Events are active_window, visited_site and
// user_session events, each with EventID, Seq and ReceivedAt set.
type LogBatch struct {
	GatewayID string  `json:"gateway_id"`
	Events    []Event `json:"events"`
	// Drops reports data the gateway discarded since its last report.
	Drops []Drop `json:"drops"`
}

// ScreenshotBatch is the JSON part named "batch" of the multipart body of
// POST /v2/ingest/screenshots. Every event has Type screenshot; its image is
// the part whose form name is the event id.
type ScreenshotBatch struct {
	GatewayID string  `json:"gateway_id"`
	Events    []Event `json:"events"`
	Drops     []Drop  `json:"drops"`
}

// ScreenshotBatchPart is the form name of the JSON part of a screenshot
// upload, at the cloud and at the collector (where it holds one Event).
const ScreenshotBatchPart = "batch"

// CollectorMetadataPart and CollectorImagePart are the form names of a
// screenshot upload to the collector (POST /v1/screenshots): the metadata
// part (one Event of type screenshot, JSON) must come first.
const (
	CollectorMetadataPart = "metadata"
	CollectorImagePart    = "image"
)

// DeviceEvent is one access-control event from a door or attendance
// terminal (Hikvision, ZKTeco), gateway → cloud.
type DeviceEvent struct {
	EventID        string     `json:"event_id"`
	Seq            int64      `json:"seq,omitempty"`
	AdapterType    string     `json:"adapter_type"`
	DeviceSerial   string     `json:"device_serial"`
	DeviceID       *int64     `json:"device_id,omitempty"`
	Datetime       time.Time  `json:"datetime"`
	EmployeeNumber string     `json:"employee_number,omitempty"`
	CardNumber     string     `json:"card_number,omitempty"`
	Door           *int       `json:"door,omitempty"`
	MajorCode      int        `json:"major_code"`
	MinorCode      int        `json:"minor_code"`
	VerifyMode     string     `json:"verify_mode,omitempty"`
	Direction      string     `json:"direction,omitempty"`
	ReceivedAt     *time.Time `json:"received_at,omitempty"`
}

// DeviceEventBatch is the decoded body of POST /v2/ingest/device-events,
// sent as gzip-compressed JSON.
type DeviceEventBatch struct {
	GatewayID string        `json:"gateway_id"`
	Events    []DeviceEvent `json:"events"`
	Drops     []Drop        `json:"drops"`
}

// Drop reasons.
const (
	// DropRetention: unsent data older than buffer.retention_days.
	DropRetention = "retention"
	// DropDiskPressure: shed at ≥ 80 % buffer usage (screenshots first).
	DropDiskPressure = "disk_pressure"
	// DropRejected: the cloud answered 400 for a single event; it cannot be
	// delivered as it is.
	DropRejected = "rejected_by_cloud"
	// DropMissingFile: a screenshot's image file vanished from disk.
	DropMissingFile = "missing_file"
	// DropBufferCorrupt: the gateway's buffer file was damaged (e.g. by a
	// power cut on a disk that lost writes) and moved aside; the count is
	// the rows that could still be counted in it.
	DropBufferCorrupt = "buffer_corrupt"
)

// Data classes used in drop reports and buffer statistics.
const (
	ClassLog        = "log"
	ClassScreenshot = "screenshot"
	ClassDevice     = "device"
)

// Drop counts data that left the gateway's buffer without being delivered,
// by reason and class, so that a gap in sequence numbers is never silent.
// Counts are deltas since the previous report; the cloud sums them.
type Drop struct {
	Reason string `json:"reason"`
	Class  string `json:"class"`
	Count  int64  `json:"count"`
	// FirstAt and LastAt bound when the drops happened.
	FirstAt time.Time `json:"first_at"`
	LastAt  time.Time `json:"last_at"`
}

// IngestResponse answers a successful ingest request (200). A replay of a
// stored answer (same Idempotency-Key, same body) returns the same body.
type IngestResponse struct {
	// Accepted counts events inserted now.
	Accepted int `json:"accepted"`
	// Duplicates counts events whose id the cloud already held.
	Duplicates int `json:"duplicates"`
	// Store is "timeseries" or "fallback" (also in X-Fallback-Mode).
	Store string `json:"store,omitempty"`
}

// ProvisionRequest is the body of POST /v2/gateway/provision: a new gateway
// exchanges its one-time provisioning token for an API key.
type ProvisionRequest struct {
	OrganizationID    int64  `json:"organization_id"`
	ProvisioningToken string `json:"provisioning_token"`
	Serial            string `json:"serial"`
	Hostname          string `json:"hostname,omitempty"`
	Version           string `json:"version,omitempty"`
}

// ProvisionResponse answers a successful provisioning (200 or 201). The API
// key is shown once; the gateway stores it (mode 0600) and sends it in
// X-API-Key from then on.
type ProvisionResponse struct {
	GatewayID      string `json:"gateway_id"`
	OrganizationID int64  `json:"organization_id"`
	APIKey         string `json:"api_key"`
}

// PingResponse answers GET /v2/gateway/ping (authenticated by X-API-Key).
type PingResponse struct {
	GatewayID      string    `json:"gateway_id"`
	OrganizationID int64     `json:"organization_id"`
	ServerTime     time.Time `json:"server_time"`
}
