package hikvision

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Settings is the adapter-specific part of a device's configuration
// (devices.Config.Settings), described by Schema.
type Settings struct {
	// Username and Password of the device account (Digest).
	Username string `json:"username"`
	Password string `json:"password"`
	// Scheme is "http" (default) or "https".
	Scheme string `json:"scheme,omitempty"`
	// InsecureSkipVerify accepts any TLS certificate (terminals ship
	// self-signed ones).
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
	// Doors the gateway may command (default [1]).
	Doors []int `json:"doors,omitempty"`
	// TimeoutMS bounds each request (default 10000).
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// StreamIdleSeconds: no byte on the alertStream for this long means the
	// stream is dead (default 40; heartbeats come every 10–30 s).
	StreamIdleSeconds int `json:"stream_idle_seconds,omitempty"`
	// PageSize of the event search, 1..30 (default 30).
	PageSize int `json:"page_size,omitempty"`
	// TimeZone (IANA) of the device, for times without an offset and for
	// sync_time (default UTC).
	TimeZone string `json:"time_zone,omitempty"`
}

// Schema is the JSON Schema (draft 2020-12) of Settings.
const Schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Hikvision ISAPI device settings",
  "type": "object",
  "required": ["username", "password"],
  "additionalProperties": false,
  "properties": {
    "username": {"type": "string", "minLength": 1, "maxLength": 32},
    "password": {"type": "string", "minLength": 1, "maxLength": 64, "writeOnly": true},
    "scheme": {"enum": ["http", "https"], "default": "http"},
    "insecure_skip_verify": {"type": "boolean", "default": false},
    "doors": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 64}, "maxItems": 64, "uniqueItems": true},
    "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 120000, "default": 10000},
    "stream_idle_seconds": {"type": "integer", "minimum": 1, "maximum": 600, "default": 40},
    "page_size": {"type": "integer", "minimum": 1, "maximum": 30, "default": 30},
    "time_zone": {"type": "string", "maxLength": 64}
  }
}`

// parseSettings decodes and checks raw, filling the defaults.
func parseSettings(raw json.RawMessage) (Settings, *time.Location, error) {
	var s Settings
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return Settings{}, nil, fmt.Errorf("settings: %w", err)
		}
	}
	if s.Username == "" || s.Password == "" {
		return Settings{}, nil, fmt.Errorf("settings: username and password are required")
	}
	switch s.Scheme {
	case "":
		s.Scheme = "http"
	case "http", "https":
	default:
		return Settings{}, nil, fmt.Errorf("settings: scheme %q is neither http nor https", s.Scheme)
	}
	if len(s.Doors) == 0 {
		s.Doors = []int{1}
	}
	for _, d := range s.Doors {
		if d < 1 || d > 64 {
			return Settings{}, nil, fmt.Errorf("settings: door %d out of 1..64", d)
		}
	}
	if s.TimeoutMS == 0 {
		s.TimeoutMS = 10000
	}
	if s.TimeoutMS < 100 || s.TimeoutMS > 120000 {
		return Settings{}, nil, fmt.Errorf("settings: timeout_ms %d out of 100..120000", s.TimeoutMS)
	}
	if s.StreamIdleSeconds == 0 {
		s.StreamIdleSeconds = 40
	}
	if s.StreamIdleSeconds < 1 || s.StreamIdleSeconds > 600 {
		return Settings{}, nil, fmt.Errorf("settings: stream_idle_seconds %d out of 1..600", s.StreamIdleSeconds)
	}
	if s.PageSize == 0 {
		s.PageSize = 30
	}
	if s.PageSize < 1 || s.PageSize > 30 {
		return Settings{}, nil, fmt.Errorf("settings: page_size %d out of 1..30", s.PageSize)
	}
	loc := time.UTC
	if s.TimeZone != "" {
		l, err := time.LoadLocation(s.TimeZone)
		if err != nil {
			return Settings{}, nil, fmt.Errorf("settings: time_zone: %w", err)
		}
		loc = l
	}
	return s, loc, nil
}
