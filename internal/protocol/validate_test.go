package protocol

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

var testNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

func validEvent(typ string) Event {
	d := int64(30)
	e := Event{EventID: "0190a6f0-0000-7000-8000-000000000001", Type: typ, AgentUID: "agent-1", ComputerName: "PC-1",
		UserSID: "S-1-5-21-1", Datetime: testNow.Add(-time.Hour)}
	switch typ {
	case TypeActiveWindow:
		e.ProcessName, e.WindowTitle, e.DurationSeconds = "code.exe", "main.go", &d
	case TypeVisitedSite:
		e.URL, e.Title, e.DurationSeconds = "https://example.com/", "Example", &d
	case TypeUserSession:
		e.SessionType = SessionLogin
	case TypeScreenshot:
		e.Screenshot = &Screenshot{SHA256: strings.Repeat("ab", 32), Size: 10, ContentType: "image/png", Width: 1920, Height: 1080}
	}
	return e
}

// wantField asserts err is a *apperr.FieldError naming field ("" for no error).
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var fe *apperr.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *apperr.FieldError; want field %s", err, err, field)
	}
	if fe.Field != field {
		t.Fatalf("field %q (%s), want %q", fe.Field, fe.Message, field)
	}
}

func TestValidateAgentEvent(t *testing.T) {
	day := 24 * time.Hour
	neg := int64(-1)
	week := int64(MaxDurationSeconds + 1)
	tests := []struct {
		name   string
		typ    string
		edit   func(e *Event)
		field  string // "" means valid
		inText string // a word the message must hold
	}{
		{"valid active_window", TypeActiveWindow, func(*Event) {}, "", ""},
		{"valid visited_site", TypeVisitedSite, func(*Event) {}, "", ""},
		{"valid user_session", TypeUserSession, func(*Event) {}, "", ""},
		{"valid screenshot", TypeScreenshot, func(*Event) {}, "", ""},
		{"4-byte runes at the limit", TypeActiveWindow, func(e *Event) { e.WindowTitle = strings.Repeat("😀", MaxTitleField) }, "", ""},
		{"title one over", TypeActiveWindow, func(e *Event) { e.WindowTitle = strings.Repeat("é", MaxTitleField+1) }, "events[3].window_title", "501"},
		{"NUL in agent_uid", TypeActiveWindow, func(e *Event) { e.AgentUID = "a\x00" }, "events[3].agent_uid", "NUL"},
		{"NUL in computer_name", TypeActiveWindow, func(e *Event) { e.ComputerName = "\x00" }, "events[3].computer_name", "NUL"},
		{"NUL in user_sid", TypeUserSession, func(e *Event) { e.UserSID = "S-1\x00" }, "events[3].user_sid", "NUL"},
		{"NUL in process_name", TypeActiveWindow, func(e *Event) { e.ProcessName = "x\x00.exe" }, "events[3].process_name", "NUL"},
		{"NUL in window_title", TypeActiveWindow, func(e *Event) { e.WindowTitle = "a\x00b" }, "events[3].window_title", "NUL"},
		{"NUL in url", TypeVisitedSite, func(e *Event) { e.URL = "https://x/\x00" }, "events[3].url", "NUL"},
		{"NUL in title", TypeVisitedSite, func(e *Event) { e.Title = "\x00" }, "events[3].title", "NUL"},
		{"NUL in an unused field", TypeUserSession, func(e *Event) { e.WindowTitle = "\x00" }, "events[3].window_title", "NUL"},
		{"NUL in session_type", TypeUserSession, func(e *Event) { e.SessionType = "login\x00" }, "events[3].session_type", "NUL"},
		{"invalid UTF-8", TypeActiveWindow, func(e *Event) { e.WindowTitle = "a\xffb" }, "events[3].window_title", "UTF-8"},
		{"surrogate bytes", TypeActiveWindow, func(e *Event) { e.WindowTitle = "\xed\xa0\x80" }, "events[3].window_title", "UTF-8"},
		{"sha256 upper case", TypeScreenshot, func(e *Event) { e.Screenshot.SHA256 = strings.Repeat("AB", 32) }, "events[3].screenshot.sha256", ""},
		{"content_type NUL", TypeScreenshot, func(e *Event) { e.Screenshot.ContentType = "image/png\x00" }, "events[3].screenshot.content_type", ""},
		{"screenshot size negative", TypeScreenshot, func(e *Event) { e.Screenshot.Size = -1 }, "events[3].screenshot.size", ""},
		{"screenshot width over int32", TypeScreenshot, func(e *Event) { e.Screenshot.Width = math.MaxInt32 + 1 }, "events[3].screenshot.width", "2147483647"},
		{"screenshot width int32 max", TypeScreenshot, func(e *Event) { e.Screenshot.Width = math.MaxInt32 }, "", ""},
		{"screenshot height negative", TypeScreenshot, func(e *Event) { e.Screenshot.Height = -1 }, "events[3].screenshot.height", ""},
		{"screenshot on a log event", TypeActiveWindow, func(e *Event) { e.Screenshot = &Screenshot{} }, "events[3].screenshot", ""},
		{"duration negative", TypeActiveWindow, func(e *Event) { e.DurationSeconds = &neg }, "events[3].duration_seconds", ""},
		{"duration over a week", TypeVisitedSite, func(e *Event) { e.DurationSeconds = &week }, "events[3].duration_seconds", ""},
		{"datetime missing", TypeActiveWindow, func(e *Event) { e.Datetime = time.Time{} }, "events[3].datetime", "required"},
		{"active_window at its horizon", TypeActiveWindow, func(e *Event) { e.Datetime = testNow.Add(-MaxAgeActiveWindow) }, "", ""},
		{"active_window past its horizon", TypeActiveWindow, func(e *Event) { e.Datetime = testNow.Add(-MaxAgeActiveWindow - time.Second) }, "events[3].datetime", "90 days"},
		{"visited_site past its horizon", TypeVisitedSite, func(e *Event) { e.Datetime = testNow.Add(-91 * day) }, "events[3].datetime", "90 days"},
		{"screenshot 29 days old", TypeScreenshot, func(e *Event) { e.Datetime = testNow.Add(-29 * day) }, "", ""},
		{"screenshot past its horizon", TypeScreenshot, func(e *Event) { e.Datetime = testNow.Add(-31 * day) }, "events[3].datetime", "30 days"},
		{"user_session 364 days old", TypeUserSession, func(e *Event) { e.Datetime = testNow.Add(-364 * day) }, "", ""},
		{"user_session past its horizon", TypeUserSession, func(e *Event) { e.Datetime = testNow.Add(-366 * day) }, "events[3].datetime", "365 days"},
		{"one day ahead", TypeUserSession, func(e *Event) { e.Datetime = testNow.Add(MaxEventFuture) }, "", ""},
		{"more than a day ahead", TypeUserSession, func(e *Event) { e.Datetime = testNow.Add(MaxEventFuture + time.Second) }, "events[3].datetime", "ahead"},
		{"bad event id", TypeActiveWindow, func(e *Event) { e.EventID = "not-a-uuid" }, "events[3].event_id", ""},
		{"seq from an agent", TypeActiveWindow, func(e *Event) { e.Seq = 1 }, "events[3].seq", ""},
		{"unknown type", TypeActiveWindow, func(e *Event) { e.Type = "keylog" }, "events[3].type", ""},
		{"session type unknown", TypeUserSession, func(e *Event) { e.SessionType = "sleep" }, "events[3].session_type", ""},
		{"process_name required", TypeActiveWindow, func(e *Event) { e.ProcessName = "" }, "events[3].process_name", "required"},
		{"url required", TypeVisitedSite, func(e *Event) { e.URL = "" }, "events[3].url", "required"},
		{"url too long", TypeVisitedSite, func(e *Event) { e.URL = strings.Repeat("u", MaxURLField+1) }, "events[3].url", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEvent(tt.typ)
			tt.edit(&e)
			err := ValidateAgentEvent(&e, "events[3]", testNow, true)
			wantField(t, err, tt.field)
			if err != nil && !strings.Contains(err.Error(), tt.inText) {
				t.Fatalf("message %q lacks %q", err, tt.inText)
			}
			// Idempotent: validating again gives the same answer.
			if err2 := ValidateAgentEvent(&e, "events[3]", testNow, true); (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
				t.Fatalf("second validation %v, first %v", err2, err)
			}
		})
	}
}

func TestValidateAgentEventScreenshotNotAllowed(t *testing.T) {
	e := validEvent(TypeScreenshot)
	wantField(t, ValidateAgentEvent(&e, "", testNow, false), "type")
}

func TestValidateEventBatch(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(b *EventBatch)
		field string
	}{
		{"valid, header fills events", func(b *EventBatch) { b.Events[1].AgentUID, b.Events[1].ComputerName = "", "" }, ""},
		{"NUL in the header agent_uid", func(b *EventBatch) { b.AgentUID = "\x00" }, "agent_uid"},
		{"NUL in the header computer_name", func(b *EventBatch) { b.ComputerName = "pc\x00" }, "computer_name"},
		{"filled event gets the header's rules", func(b *EventBatch) { b.Events[1].ComputerName, b.ComputerName = "", strings.Repeat("c", 256) }, "computer_name"},
		{"second event bad", func(b *EventBatch) { b.Events[1].UserSID = "\x00" }, "events[1].user_sid"},
		{"screenshot refused in a batch", func(b *EventBatch) { b.Events[0] = validEvent(TypeScreenshot) }, "events[0].type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := EventBatch{AgentUID: "agent-h", ComputerName: "PC-H", Events: []Event{validEvent(TypeActiveWindow), validEvent(TypeVisitedSite)}}
			b.Events[1].EventID = ""
			tt.edit(&b)
			err := ValidateEventBatch(&b, testNow)
			wantField(t, err, tt.field)
			if tt.field == "" && (b.Events[1].AgentUID != "agent-h" || b.Events[1].ComputerName != "PC-H") {
				t.Fatalf("header did not fill the event: %+v", b.Events[1])
			}
		})
	}
}

func validDevice() DeviceEvent {
	id, door := int64(7), 1
	return DeviceEvent{EventID: "0190a6f0-0000-7000-8000-0000000000AA", AdapterType: "hikvision", DeviceSerial: "DS-1",
		DeviceID: &id, Datetime: testNow.Add(-time.Minute), EmployeeNumber: "E-1", CardNumber: "12345", Door: &door,
		MajorCode: 5, MinorCode: 75, VerifyMode: "card", Direction: "in"}
}

func TestValidateDeviceEvent(t *testing.T) {
	zero, negID := int64(0), int64(-3)
	negDoor, bigDoor := -1, math.MaxInt32+1
	tests := []struct {
		name  string
		edit  func(e *DeviceEvent)
		field string
	}{
		{"valid", func(*DeviceEvent) {}, ""},
		{"adapter_type required", func(e *DeviceEvent) { e.AdapterType = "" }, "events[0].adapter_type"},
		{"adapter_type too long", func(e *DeviceEvent) { e.AdapterType = strings.Repeat("a", MaxAdapterTypeField+1) }, "events[0].adapter_type"},
		{"device_serial NUL", func(e *DeviceEvent) { e.DeviceSerial = "DS\x00" }, "events[0].device_serial"},
		{"employee_number NUL", func(e *DeviceEvent) { e.EmployeeNumber = "\x00" }, "events[0].employee_number"},
		{"employee_number too long", func(e *DeviceEvent) { e.EmployeeNumber = strings.Repeat("9", 256) }, "events[0].employee_number"},
		{"card_number NUL", func(e *DeviceEvent) { e.CardNumber = "1\x002" }, "events[0].card_number"},
		{"card_number invalid UTF-8", func(e *DeviceEvent) { e.CardNumber = "\xc3" }, "events[0].card_number"},
		{"verify_mode too long", func(e *DeviceEvent) { e.VerifyMode = strings.Repeat("v", 256) }, "events[0].verify_mode"},
		{"direction NUL", func(e *DeviceEvent) { e.Direction = "in\x00" }, "events[0].direction"},
		{"device_id zero", func(e *DeviceEvent) { e.DeviceID = &zero }, "events[0].device_id"},
		{"device_id negative", func(e *DeviceEvent) { e.DeviceID = &negID }, "events[0].device_id"},
		{"door negative", func(e *DeviceEvent) { e.Door = &negDoor }, "events[0].door"},
		{"door over int32", func(e *DeviceEvent) { e.Door = &bigDoor }, "events[0].door"},
		{"major_code over int32", func(e *DeviceEvent) { e.MajorCode = math.MaxInt32 + 1 }, "events[0].major_code"},
		{"minor_code under int32", func(e *DeviceEvent) { e.MinorCode = math.MinInt32 - 1 }, "events[0].minor_code"},
		{"minor_code int32 min", func(e *DeviceEvent) { e.MinorCode = math.MinInt32 }, ""},
		{"datetime missing", func(e *DeviceEvent) { e.Datetime = time.Time{} }, "events[0].datetime"},
		{"bad event id", func(e *DeviceEvent) { e.EventID = "x" }, "events[0].event_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validDevice()
			tt.edit(&e)
			wantField(t, ValidateDeviceEvent(&e, "events[0]"), tt.field)
			e2 := validDevice()
			tt.edit(&e2)
			wantField(t, ValidateDeviceEventAt(&e2, "events[0]", testNow), tt.field)
			if tt.field == "" && e.EventID != strings.ToLower(validDevice().EventID) {
				t.Fatalf("event id not canonicalised: %s", e.EventID)
			}
		})
	}
}

func TestValidateDeviceEventAtTime(t *testing.T) {
	tests := []struct {
		name  string
		at    time.Time
		field string
	}{
		{"364 days old", testNow.Add(-364 * 24 * time.Hour), ""},
		{"at the horizon", testNow.Add(-MaxAgeDeviceEvent), ""},
		{"past the horizon", testNow.Add(-MaxAgeDeviceEvent - time.Second), "datetime"},
		{"a day ahead", testNow.Add(MaxEventFuture), ""},
		{"too far ahead", testNow.Add(MaxEventFuture + time.Minute), "datetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validDevice()
			e.Datetime = tt.at
			err := ValidateDeviceEventAt(&e, "", testNow)
			wantField(t, err, tt.field)
			if tt.field != "" && ValidateDeviceEvent(&e, "") != nil {
				t.Fatal("ValidateDeviceEvent must not apply the time rules")
			}
		})
	}
}

func TestValidateAgentRegistration(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(r *AgentRegistration)
		field string
	}{
		{"valid", func(*AgentRegistration) {}, ""},
		{"agent_uid required", func(r *AgentRegistration) { r.AgentUID = "" }, "agent_uid"},
		{"computer_name required", func(r *AgentRegistration) { r.ComputerName = "" }, "computer_name"},
		{"agent_uid NUL", func(r *AgentRegistration) { r.AgentUID = "a\x00" }, "agent_uid"},
		{"user_sid NUL", func(r *AgentRegistration) { r.UserSID = "\x00" }, "user_sid"},
		{"agent_version too long", func(r *AgentRegistration) { r.AgentVersion = strings.Repeat("1", 256) }, "agent_version"},
		{"os_version invalid UTF-8", func(r *AgentRegistration) { r.OSVersion = "\xff" }, "os_version"},
		{"policy_version NUL", func(r *AgentRegistration) { r.PolicyVersion = "1.0\x00" }, "policy_version"},
		{"255 four-byte runes", func(r *AgentRegistration) { r.ComputerName = strings.Repeat("𝕏", 255) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := AgentRegistration{AgentUID: "agent-1", ComputerName: "PC-1", UserSID: "S-1", AgentVersion: "2.0.1", OSVersion: "Windows 11", PolicyVersion: "1.4.0"}
			tt.edit(&r)
			wantField(t, ValidateAgentRegistration(&r), tt.field)
		})
	}
}

func TestMaxEventAge(t *testing.T) {
	for typ, days := range map[string]int{TypeActiveWindow: 90, TypeVisitedSite: 90, TypeScreenshot: 30, TypeUserSession: 365, ClassDevice: 365} {
		d, ok := MaxEventAge(typ)
		if !ok || d != time.Duration(days)*24*time.Hour {
			t.Errorf("%s: %v %v, want %d days", typ, d, ok, days)
		}
	}
	if _, ok := MaxEventAge("nope"); ok {
		t.Error("unknown type has a horizon")
	}
}
