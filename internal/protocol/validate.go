package protocol

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

func fieldErr(field, format string, a ...any) *apperr.FieldError {
	return &apperr.FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// Retention horizons: the oldest event each table keeps (the cloud drops
// daily partitions older than this; see monitoring.retention). An event
// older than its horizon when it is validated is refused, at the collector
// and at the cloud alike: the cloud would delete it within the hour, or have
// no partition left to hold it.
const (
	MaxAgeActiveWindow = 90 * 24 * time.Hour
	MaxAgeVisitedSite  = 90 * 24 * time.Hour
	MaxAgeScreenshot   = 30 * 24 * time.Hour
	MaxAgeUserSession  = 365 * 24 * time.Hour
	MaxAgeDeviceEvent  = 365 * 24 * time.Hour
	// MaxEventFuture bounds how far ahead of the validating clock an event
	// time may be (clock skew between agents, gateway and cloud).
	MaxEventFuture = 24 * time.Hour
	// MaxDurationSeconds bounds duration_seconds (one week).
	MaxDurationSeconds = 7 * 24 * 3600
	// MaxAdapterTypeField bounds a device event's adapter_type.
	MaxAdapterTypeField = 100
)

// MaxEventAge returns the retention horizon of an event type
// (active_window, visited_site, screenshot, user_session, or "device" for
// device events), and false for an unknown type.
func MaxEventAge(typ string) (time.Duration, bool) {
	switch typ {
	case TypeActiveWindow:
		return MaxAgeActiveWindow, true
	case TypeVisitedSite:
		return MaxAgeVisitedSite, true
	case TypeScreenshot:
		return MaxAgeScreenshot, true
	case TypeUserSession:
		return MaxAgeUserSession, true
	case ClassDevice:
		return MaxAgeDeviceEvent, true
	}
	return 0, false
}

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

// CheckText validates a text field as PostgreSQL's text columns (UTF8
// encoding) store it: valid UTF-8 (no invalid code points, no surrogates),
// no NUL character (U+0000, which PostgreSQL refuses), at most max
// characters, and present when required. It returns nil or a *apperr.FieldError
// naming field.
func CheckText(field, v string, required bool, max int) error {
	if err := checkText(field, v, required, max); err != nil {
		return err
	}
	return nil
}

func checkText(field, v string, required bool, max int) *apperr.FieldError {
	if v == "" {
		if required {
			return fieldErr(field, "is required")
		}
		return nil
	}
	if !utf8.ValidString(v) {
		return fieldErr(field, "is not valid UTF-8 (invalid byte sequence or code point)")
	}
	if i := strings.IndexByte(v, 0); i >= 0 {
		return fieldErr(field, "must not contain the NUL character (U+0000, at byte %d)", i)
	}
	if n := utf8.RuneCountInString(v); n > max {
		return fieldErr(field, "is %d characters long, at most %d allowed", n, max)
	}
	return nil
}

// checkTime refuses a missing time, one older than maxAge before now (the
// retention horizon of the event's table) and one more than MaxEventFuture
// ahead of now.
func checkTime(field string, t, now time.Time, maxAge time.Duration, what string) *apperr.FieldError {
	if t.IsZero() {
		return fieldErr(field, "is required (RFC 3339)")
	}
	if t.Before(now.Add(-maxAge)) {
		return fieldErr(field, "is older than the retention horizon of %s events (%d days)", what, int(maxAge/(24*time.Hour)))
	}
	if t.After(now.Add(MaxEventFuture)) {
		return fieldErr(field, "is more than %s ahead of the clock (%s)", MaxEventFuture, now.UTC().Format(time.RFC3339))
	}
	return nil
}

func checkInt32(field string, v int64, min int64) *apperr.FieldError {
	if v < min || v > math.MaxInt32 {
		return fieldErr(field, "must be between %d and %d", min, math.MaxInt32)
	}
	return nil
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// ValidateEventBatch checks the body of POST /v1/events: the batch-level
// agent_uid and computer_name (which fill events that leave them empty,
// done here) and every event with ValidateAgentEvent (paths events[i]).
// Screenshot events are refused (they have their own endpoint). It does
// not bound the number of events; the collector does.
func ValidateEventBatch(b *EventBatch, now time.Time) error {
	if err := checkText("agent_uid", b.AgentUID, false, MaxShortField); err != nil {
		return err
	}
	if err := checkText("computer_name", b.ComputerName, false, MaxShortField); err != nil {
		return err
	}
	for i := range b.Events {
		e := &b.Events[i]
		if e.AgentUID == "" {
			e.AgentUID = b.AgentUID
		}
		if e.ComputerName == "" {
			e.ComputerName = b.ComputerName
		}
		if err := ValidateAgentEvent(e, "events["+strconv.Itoa(i)+"]", now, false); err != nil {
			return err
		}
	}
	return nil
}

// ValidateAgentEvent checks an event as received from an agent; path is the
// JSON path prefix for error messages (e.g. "events[3]"). It canonicalises
// EventID in place. Screenshot events are valid only when allowScreenshot.
// Every rule mirrors what the cloud's tables store (docs/protocol.md §1.2):
// text without NUL, times within the type's retention horizon
// (MaxEventAge) and at most MaxEventFuture ahead of now, numbers within
// their column's range. Errors are *apperr.FieldError.
func ValidateAgentEvent(e *Event, path string, now time.Time, allowScreenshot bool) error {
	if err := validateAgentEvent(e, path, now, allowScreenshot); err != nil {
		return err
	}
	return nil
}

func validateAgentEvent(e *Event, path string, now time.Time, allowScreenshot bool) *apperr.FieldError {
	p := func(name string) string { return joinPath(path, name) }
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
	maxAge, _ := MaxEventAge(e.Type)
	if err := checkTime(p("datetime"), e.Datetime, now, maxAge, e.Type); err != nil {
		return err
	}
	if e.DurationSeconds != nil && (*e.DurationSeconds < 0 || *e.DurationSeconds > MaxDurationSeconds) {
		return fieldErr(p("duration_seconds"), "must be between 0 and %d", MaxDurationSeconds)
	}
	if e.ReceivedAt != nil {
		return fieldErr(p("received_at"), "is assigned by the gateway and must be absent")
	}
	// Every text field is checked, even one its type does not use: the
	// gateway stores and forwards the event as it came.
	for _, f := range []struct {
		name, v string
		max     int
		types   []string
	}{
		{"process_name", e.ProcessName, MaxShortField, []string{TypeActiveWindow}},
		{"window_title", e.WindowTitle, MaxTitleField, []string{TypeActiveWindow}},
		{"url", e.URL, MaxURLField, []string{TypeActiveWindow, TypeVisitedSite}},
		{"title", e.Title, MaxTitleField, []string{TypeVisitedSite}},
		{"session_type", e.SessionType, MaxShortField, []string{TypeUserSession}},
	} {
		if err := checkText(p(f.name), f.v, false, f.max); err != nil {
			return err
		}
	}
	switch e.Type {
	case TypeActiveWindow:
		if err := checkText(p("process_name"), e.ProcessName, true, MaxShortField); err != nil {
			return err
		}
	case TypeVisitedSite:
		if err := checkText(p("url"), e.URL, true, MaxURLField); err != nil {
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
		// Size 0 means "not stated" from an agent (the collector takes the
		// image's size); the cloud requires it positive.
		if s.Size < 0 {
			return fieldErr(p("screenshot.size"), "must be positive")
		}
		if err := checkInt32(p("screenshot.width"), int64(s.Width), 0); err != nil {
			return err
		}
		if err := checkInt32(p("screenshot.height"), int64(s.Height), 0); err != nil {
			return err
		}
	}
	if e.Type != TypeScreenshot && e.Screenshot != nil {
		return fieldErr(p("screenshot"), "is allowed only on screenshot events")
	}
	return nil
}

// ValidateDeviceEvent checks a device event's fields that do not depend on
// the clock: event id, text fields (lengths, valid UTF-8, no NUL) and
// numbers within their integer columns. ValidateDeviceEventAt adds the
// time rules.
func ValidateDeviceEvent(e *DeviceEvent, path string) error {
	if err := validateDeviceEvent(e, path); err != nil {
		return err
	}
	return nil
}

// ValidateDeviceEventAt checks a device event entirely: ValidateDeviceEvent
// plus datetime within MaxAgeDeviceEvent before now and MaxEventFuture
// after it.
func ValidateDeviceEventAt(e *DeviceEvent, path string, now time.Time) error {
	if err := validateDeviceEvent(e, path); err != nil {
		return err
	}
	if err := checkTime(joinPath(path, "datetime"), e.Datetime, now, MaxAgeDeviceEvent, "device"); err != nil {
		return err
	}
	return nil
}

func validateDeviceEvent(e *DeviceEvent, path string) *apperr.FieldError {
	p := func(name string) string { return joinPath(path, name) }
	if e.EventID != "" {
		id, ok := CanonicalEventID(e.EventID)
		if !ok {
			return fieldErr(p("event_id"), "must be a UUID")
		}
		e.EventID = id
	}
	for _, f := range []struct {
		name, v  string
		required bool
		max      int
	}{
		{"adapter_type", e.AdapterType, true, MaxAdapterTypeField},
		{"device_serial", e.DeviceSerial, true, MaxShortField},
		{"employee_number", e.EmployeeNumber, false, MaxShortField},
		{"card_number", e.CardNumber, false, MaxShortField},
		{"verify_mode", e.VerifyMode, false, MaxShortField},
		{"direction", e.Direction, false, MaxShortField},
	} {
		if err := checkText(p(f.name), f.v, f.required, f.max); err != nil {
			return err
		}
	}
	if e.Datetime.IsZero() {
		return fieldErr(p("datetime"), "is required (RFC 3339)")
	}
	if e.DeviceID != nil && *e.DeviceID <= 0 {
		return fieldErr(p("device_id"), "must be positive")
	}
	if e.Door != nil {
		if err := checkInt32(p("door"), int64(*e.Door), 0); err != nil {
			return err
		}
	}
	if err := checkInt32(p("major_code"), int64(e.MajorCode), math.MinInt32); err != nil {
		return err
	}
	if err := checkInt32(p("minor_code"), int64(e.MinorCode), math.MinInt32); err != nil {
		return err
	}
	return nil
}

// ValidateAgentRegistration checks the body of an agent registration or
// heartbeat (the gateway keeps these strings and reports them up):
// agent_uid and computer_name required, every string at most MaxShortField
// characters of valid UTF-8 without NUL.
func ValidateAgentRegistration(r *AgentRegistration) error {
	for _, f := range []struct {
		name, v  string
		required bool
	}{
		{"agent_uid", r.AgentUID, true},
		{"computer_name", r.ComputerName, true},
		{"user_sid", r.UserSID, false},
		{"agent_version", r.AgentVersion, false},
		{"os_version", r.OSVersion, false},
		{"policy_version", r.PolicyVersion, false},
	} {
		if err := checkText(f.name, f.v, f.required, MaxShortField); err != nil {
			return err
		}
	}
	return nil
}
