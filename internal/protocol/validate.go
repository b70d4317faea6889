package protocol

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// FieldError is a validation failure of one field. Field is a JSON path such
// as events[3].user_sid.
type FieldError struct {
	Field   string
	Message string
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// Oldest and newest plausible event times relative to the validation clock.
const (
	maxEventAge    = 400 * 24 * time.Hour
	maxEventFuture = 24 * time.Hour
	// MaxDurationSeconds bounds duration_seconds (one week).
	MaxDurationSeconds = 7 * 24 * 3600
)

// CanonicalEventID checks that id is a UUID and returns its canonical
// lower-case 36-character form.
func CanonicalEventID(id string) (string, bool) {
	if len(id) != 36 {
		return "", false
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

func checkText(field, v string, required bool, max int) *FieldError {
	if v == "" {
		if required {
			return fieldErr(field, "is required")
		}
		return nil
	}
	if !utf8.ValidString(v) {
		return fieldErr(field, "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(v); n > max {
		return fieldErr(field, "is %d characters long, at most %d allowed", n, max)
	}
	return nil
}

// ValidateAgentEvent checks an event as received from an agent; path is the
// JSON path prefix for error messages (e.g. "events[3]"). It canonicalises
// EventID in place. Screenshot events are valid only when allowScreenshot.
func ValidateAgentEvent(e *Event, path string, now time.Time, allowScreenshot bool) error {
	p := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	if e.EventID != "" {
		id, ok := CanonicalEventID(e.EventID)
		if !ok {
			return fieldErr(p("event_id"), "must be a UUID (36 characters, e.g. a UUIDv7)")
		}
		e.EventID = id
	}
	if e.Seq != 0 {
		return fieldErr(p("seq"), "is assigned by the gateway and must be absent")
	}
	switch e.Type {
	case TypeActiveWindow, TypeVisitedSite, TypeUserSession:
	case TypeScreenshot:
		if !allowScreenshot {
			return fieldErr(p("type"), "screenshot events are uploaded to %s", PathAgentScreenshot)
		}
	case "":
		return fieldErr(p("type"), "is required")
	default:
		return fieldErr(p("type"), "must be one of active_window, visited_site, user_session, screenshot")
	}
	if err := checkText(p("agent_uid"), e.AgentUID, true, MaxShortField); err != nil {
		return err
	}
	if err := checkText(p("computer_name"), e.ComputerName, true, MaxShortField); err != nil {
		return err
	}
	if err := checkText(p("user_sid"), e.UserSID, true, MaxShortField); err != nil {
		return err
	}
	if e.Datetime.IsZero() {
		return fieldErr(p("datetime"), "is required (RFC 3339)")
	}
	if e.Datetime.Before(now.Add(-maxEventAge)) || e.Datetime.After(now.Add(maxEventFuture)) {
		return fieldErr(p("datetime"), "is out of range (more than 400 days old or 1 day ahead)")
	}
	if e.DurationSeconds != nil && (*e.DurationSeconds < 0 || *e.DurationSeconds > MaxDurationSeconds) {
		return fieldErr(p("duration_seconds"), "must be between 0 and %d", MaxDurationSeconds)
	}
	if e.ReceivedAt != nil {
		return fieldErr(p("received_at"), "is assigned by the gateway and must be absent")
	}
	switch e.Type {
	case TypeActiveWindow:
		if err := checkText(p("process_name"), e.ProcessName, true, MaxShortField); err != nil {
			return err
		}
		if err := checkText(p("window_title"), e.WindowTitle, false, MaxTitleField); err != nil {
			return err
		}
		if err := checkText(p("url"), e.URL, false, MaxURLField); err != nil {
			return err
		}
	case TypeVisitedSite:
		if err := checkText(p("url"), e.URL, true, MaxURLField); err != nil {
			return err
		}
		if err := checkText(p("title"), e.Title, false, MaxTitleField); err != nil {
			return err
		}
	case TypeUserSession:
		switch e.SessionType {
		case SessionLogin, SessionLogout, SessionLock, SessionUnlock:
		case "":
			return fieldErr(p("session_type"), "is required")
		default:
			return fieldErr(p("session_type"), "must be one of login, logout, lock, unlock")
		}
	case TypeScreenshot:
		s := e.Screenshot
		if s == nil {
			return fieldErr(p("screenshot"), "is required")
		}
		if len(s.SHA256) != 64 || strings.ToLower(s.SHA256) != s.SHA256 {
			return fieldErr(p("screenshot.sha256"), "must be 64 lower-case hex characters")
		}
		if _, err := hex.DecodeString(s.SHA256); err != nil {
			return fieldErr(p("screenshot.sha256"), "must be 64 lower-case hex characters")
		}
		switch s.ContentType {
		case "image/png", "image/jpeg", "image/webp":
		case "":
			return fieldErr(p("screenshot.content_type"), "is required")
		default:
			return fieldErr(p("screenshot.content_type"), "must be image/png, image/jpeg or image/webp")
		}
		if s.Width < 0 || s.Height < 0 {
			return fieldErr(p("screenshot.width"), "must not be negative")
		}
	}
	if e.Type != TypeScreenshot && e.Screenshot != nil {
		return fieldErr(p("screenshot"), "is allowed only on screenshot events")
	}
	return nil
}

// ValidateDeviceEvent checks a device event before it enters the buffer.
func ValidateDeviceEvent(e *DeviceEvent, path string) error {
	p := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	if e.EventID != "" {
		id, ok := CanonicalEventID(e.EventID)
		if !ok {
			return fieldErr(p("event_id"), "must be a UUID")
		}
		e.EventID = id
	}
	if err := checkText(p("adapter_type"), e.AdapterType, true, 100); err != nil {
		return err
	}
	if err := checkText(p("device_serial"), e.DeviceSerial, true, MaxShortField); err != nil {
		return err
	}
	if e.Datetime.IsZero() {
		return fieldErr(p("datetime"), "is required (RFC 3339)")
	}
	return nil
}
