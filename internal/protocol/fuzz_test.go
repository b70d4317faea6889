package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// The fuzz targets decode as the two sides do: the collector with JSON v2
// (case-insensitive names), the gateway re-encodes accepted events with
// encoding/json, and the cloud decodes those with JSON v2.

var fuzzNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

func decodeAsCollector(data []byte, v any) error {
	return jsonv2.Unmarshal(data, v, jsonv2.MatchCaseInsensitiveNames(true))
}

// checkFieldError asserts err is a *apperr.FieldError naming a field under prefix.
func checkFieldError(t *testing.T, err error, prefix string) {
	t.Helper()
	var fe *apperr.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *apperr.FieldError", err, err)
	}
	if fe.Field == "" || !strings.HasPrefix(fe.Field, prefix) || fe.Message == "" {
		t.Fatalf("field error %+v does not name a field under %q", fe, prefix)
	}
}

// checkStorableText asserts what PostgreSQL's text columns need.
func checkStorableText(t *testing.T, name, v string) {
	t.Helper()
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		t.Fatalf("accepted %s %q is not storable text", name, v)
	}
}

func sameEvent(a, b Event) bool {
	if !a.Datetime.Equal(b.Datetime) {
		return false
	}
	a.Datetime, b.Datetime = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func agentEventSeeds(f *testing.F) {
	now := fuzzNow.Format(time.RFC3339Nano)
	for _, s := range []string{
		`{"type":"active_window","agent_uid":"a1","computer_name":"PC-1","user_sid":"S-1-5-21-1","datetime":"` + now + `","duration_seconds":12,"process_name":"excel.exe","window_title":"Budget.xlsx"}`,
		`{"event_id":"0190A6F0-0000-7000-8000-000000000001","type":"visited_site","agent_uid":"a1","computer_name":"PC","user_sid":"S","datetime":"` + now + `","url":"https://example.com/ü","title":"😀"}`,
		`{"type":"user_session","agent_uid":"a1","computer_name":"PC","user_sid":"S","datetime":"2026-03-17T12:00:00Z","session_type":"lock"}`,
		`{"type":"screenshot","agent_uid":"a","computer_name":"b","user_sid":"c","datetime":"2026-06-01T00:00:00+05:00","screenshot":{"sha256":"` + strings.Repeat("0f", 32) + `","size":10,"content_type":"image/png","width":2147483647,"height":0}}`,
		`{"type":"active_window","agent_uid":"a\u0000","computer_name":"PC","user_sid":"S","datetime":"` + now + `","process_name":"p"}`,
		`{"type":"visited_site","agent_uid":"a","computer_name":"PC","user_sid":"S","datetime":"` + now + `","url":"\ud800"}`,
		`{"type":"visited_site","agent_uid":"a","computer_name":"PC","user_sid":"S","datetime":"` + now + `","url":"\ud83d\ude00"}`,
		`{"type":"active_window","agent_uid":"a","computer_name":"PC","user_sid":"S","datetime":"2026-03-17T11:59:59Z","process_name":"p"}`,
		`{"type":"active_window","agent_uid":"a","computer_name":"PC","user_sid":"S","datetime":"2026-06-16T12:00:01Z","process_name":"p","duration_seconds":604801}`,
		`{"type":"screenshot","agent_uid":"a","computer_name":"b","user_sid":"c","datetime":"` + now + `","screenshot":{"sha256":"x","size":-1,"width":2147483648}}`,
		`{"TYPE":"user_session","Agent_UID":"a","computer_name":"b","user_sid":"c","datetime":"` + now + `","session_type":"login","seq":5}`,
		`{"type":"active_window","datetime":"0000-01-01T00:00:00Z"}`,
		`{"type":"active_window","datetime":"9999-12-31T23:59:59.999999999-23:59"}`,
		`null`, `{}`, `[]`, `{"type":1}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzValidateAgentEvent: validation never panics, refuses with a
// *apperr.FieldError naming the field, is idempotent, and what it accepts is
// storable text within range that survives the gateway's re-encoding and is
// accepted again at the cloud.
func FuzzValidateAgentEvent(f *testing.F) {
	agentEventSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Event
		if decodeAsCollector(data, &e) != nil {
			return
		}
		err := ValidateAgentEvent(&e, "events[0]", fuzzNow, true)
		again := e
		err2 := ValidateAgentEvent(&again, "events[0]", fuzzNow, true)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("not idempotent: %v then %v", err, err2)
		}
		if err != nil {
			checkFieldError(t, err, "events[0].")
			return
		}
		for name, v := range map[string]string{"agent_uid": e.AgentUID, "computer_name": e.ComputerName, "user_sid": e.UserSID,
			"process_name": e.ProcessName, "window_title": e.WindowTitle, "url": e.URL, "title": e.Title, "session_type": e.SessionType} {
			checkStorableText(t, name, v)
		}
		maxAge, _ := MaxEventAge(e.Type)
		if e.Datetime.Before(fuzzNow.Add(-maxAge)) || e.Datetime.After(fuzzNow.Add(MaxEventFuture)) {
			t.Fatalf("accepted datetime %v outside the horizon", e.Datetime)
		}
		if s := e.Screenshot; s != nil && (s.Width < 0 || s.Height < 0 || s.Width > 1<<31-1 || s.Height > 1<<31-1 || s.Size < 0) {
			t.Fatalf("accepted screenshot numbers out of range: %+v", s)
		}
		// The gateway stores encoding/json's encoding; the cloud decodes
		// it with JSON v2 and validates it again.
		stored, err := json.Marshal(&e)
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		var back Event
		if err := jsonv2.Unmarshal(stored, &back); err != nil {
			t.Fatalf("the cloud cannot decode %s: %v", stored, err)
		}
		if !sameEvent(e, back) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, back)
		}
		if err := ValidateAgentEvent(&back, "events[0]", fuzzNow, true); err != nil {
			t.Fatalf("the cloud refuses what the collector accepted: %v", err)
		}
	})
}

// FuzzValidateEventBatch: a batch is accepted only if every event is, the
// header fills the events, and errors name a field.
func FuzzValidateEventBatch(f *testing.F) {
	now := fuzzNow.Format(time.RFC3339)
	for _, s := range []string{
		`{"agent_uid":"a1","computer_name":"PC","events":[{"type":"user_session","user_sid":"S","datetime":"` + now + `","session_type":"login"}]}`,
		`{"agent_uid":"a\u0000","computer_name":"PC","events":[{"type":"user_session","agent_uid":"x","user_sid":"S","datetime":"` + now + `","session_type":"login"}]}`,
		`{"agent_uid":"a1","events":[{"type":"user_session","user_sid":"S","datetime":"` + now + `","session_type":"login"},{"type":"screenshot"}]}`,
		`{"events":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b EventBatch
		if decodeAsCollector(data, &b) != nil {
			return
		}
		err := ValidateEventBatch(&b, fuzzNow)
		if err != nil {
			checkFieldError(t, err, "")
			return
		}
		checkStorableText(t, "agent_uid", b.AgentUID)
		checkStorableText(t, "computer_name", b.ComputerName)
		for i := range b.Events {
			e := b.Events[i]
			if e.AgentUID == "" || e.ComputerName == "" || e.Type == TypeScreenshot {
				t.Fatalf("accepted event %d: %+v", i, e)
			}
			if err := ValidateAgentEvent(&e, "", fuzzNow, false); err != nil {
				t.Fatalf("batch accepted but event %d refused alone: %v", i, err)
			}
		}
	})
}

// FuzzValidateDeviceEvent: as FuzzValidateAgentEvent, for device events.
func FuzzValidateDeviceEvent(f *testing.F) {
	now := fuzzNow.Format(time.RFC3339Nano)
	for _, s := range []string{
		`{"event_id":"0190a6f0-0000-7000-8000-0000000000aa","adapter_type":"hikvision","device_serial":"DS-1","device_id":7,"datetime":"` + now + `","employee_number":"E1","card_number":"123","door":1,"major_code":5,"minor_code":75,"verify_mode":"card","direction":"in"}`,
		`{"adapter_type":"zkteco","device_serial":"Z\u0000","datetime":"` + now + `","major_code":0,"minor_code":0}`,
		`{"adapter_type":"zkteco","device_serial":"Z","datetime":"` + now + `","door":-1,"major_code":2147483648,"minor_code":-2147483649,"device_id":0}`,
		`{"adapter_type":"zkteco","device_serial":"Z","datetime":"2025-06-15T11:59:59Z","major_code":1,"minor_code":1}`,
		`{"adapter_type":"` + strings.Repeat("h", 101) + `","device_serial":"Z","datetime":"` + now + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var e DeviceEvent
		if decodeAsCollector(data, &e) != nil {
			return
		}
		err := ValidateDeviceEventAt(&e, "events[0]", fuzzNow)
		again := e
		if err2 := ValidateDeviceEventAt(&again, "events[0]", fuzzNow); (err == nil) != (err2 == nil) {
			t.Fatalf("not idempotent: %v then %v", err, err2)
		}
		if err != nil {
			checkFieldError(t, err, "events[0].")
			return
		}
		if ValidateDeviceEvent(&again, "events[0]") != nil {
			t.Fatal("ValidateDeviceEvent refuses what ValidateDeviceEventAt accepts")
		}
		for name, v := range map[string]string{"adapter_type": e.AdapterType, "device_serial": e.DeviceSerial, "employee_number": e.EmployeeNumber,
			"card_number": e.CardNumber, "verify_mode": e.VerifyMode, "direction": e.Direction} {
			checkStorableText(t, name, v)
		}
		if e.MajorCode != int(int32(e.MajorCode)) || e.MinorCode != int(int32(e.MinorCode)) ||
			(e.Door != nil && (*e.Door < 0 || *e.Door != int(int32(*e.Door)))) || (e.DeviceID != nil && *e.DeviceID <= 0) {
			t.Fatalf("accepted numbers out of column range: %+v", e)
		}
		stored, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		var back DeviceEvent
		if err := jsonv2.Unmarshal(stored, &back); err != nil {
			t.Fatalf("the cloud cannot decode %s: %v", stored, err)
		}
		if err := ValidateDeviceEventAt(&back, "events[0]", fuzzNow); err != nil {
			t.Fatalf("the cloud refuses what the gateway accepted: %v", err)
		}
	})
}

// FuzzValidateAgentRegistration: registrations accepted are storable.
func FuzzValidateAgentRegistration(f *testing.F) {
	f.Add([]byte(`{"agent_uid":"a1","computer_name":"PC","user_sid":"S","agent_version":"2.0","os_version":"Windows 11","policy_version":"1.4.0"}`))
	f.Add([]byte(`{"agent_uid":"a1","computer_name":"PC\u0000"}`))
	f.Add([]byte(`{"agent_uid":"","computer_name":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r AgentRegistration
		if decodeAsCollector(data, &r) != nil {
			return
		}
		if err := ValidateAgentRegistration(&r); err != nil {
			checkFieldError(t, err, "")
			return
		}
		for _, v := range []string{r.AgentUID, r.ComputerName, r.UserSID, r.AgentVersion, r.OSVersion, r.PolicyVersion} {
			checkStorableText(t, "registration", v)
		}
		if r.AgentUID == "" || r.ComputerName == "" {
			t.Fatalf("accepted without required fields: %+v", r)
		}
	})
}

// FuzzControlEnvelope decodes control-channel messages as both ends do
// (encoding/json into Envelope, then the type's data): never a panic, and
// what decodes re-encodes to an equal value.
func FuzzControlEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"welcome","data":{"gateway_id":"gw","heartbeat_interval_seconds":30}}`,
		`{"v":1,"type":"heartbeat","data":{"cpu_percent":12.5,"memory_percent":40,"disk_percent":10,"buffer_usage":0.1,"queue_depth":5,"connected_agents":3,"versions":{"gateway":"2.0.0"}}}`,
		`{"v":1,"type":"command","data":{"id":"c1","type":"policy_update","payload":{"a":1},"priority":5,"attempt":1,"expires_at":"2026-06-16T12:00:00Z"}}`,
		`{"v":1,"type":"command_ack","data":{"command_id":"c1","phase":"completed","result":{"ok":true}}}`,
		`{"v":1,"type":"error","data":{"code":"validation_failed","message":"unknown message type x"}}`,
		`{"v":2,"type":"heartbeat","data":{"cpu_percent":1e400}}`,
		`{"v":1,"type":"heartbeat","data":{"versions":{"gateway":"\u0000"}}}`,
		`{"v":1,"type":"command_ack","data":"not an object"}`,
		`{"v":1}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var env Envelope
		if json.Unmarshal(data, &env) != nil {
			return
		}
		roundTrip(t, &env, new(Envelope))
		var v any
		switch env.Type {
		case MsgWelcome:
			v = new(Welcome)
		case MsgHeartbeat:
			v = new(Heartbeat)
		case MsgCommand:
			v = new(Command)
		case MsgCommandAck:
			v = new(CommandAck)
		case MsgError:
			v = new(ControlError)
		default:
			return
		}
		if len(env.Data) == 0 || json.Unmarshal(env.Data, v) != nil {
			return
		}
		roundTrip(t, v, reflect.New(reflect.TypeOf(v).Elem()).Interface())
	})
}

// roundTrip asserts that v encodes and decodes into fresh to an equal
// encoding (encoding/json compacts raw messages, so encodings are compared).
func roundTrip(t *testing.T, v, fresh any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("decoded %T does not encode: %v", v, err)
	}
	if err := json.Unmarshal(b, fresh); err != nil {
		t.Fatalf("encoded %T does not decode: %s: %v", v, b, err)
	}
	b2, err := json.Marshal(fresh)
	if err != nil || string(b) != string(b2) {
		t.Fatalf("%T round trip differs:\n%s\n%s", v, b, b2)
	}
}
