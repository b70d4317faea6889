package ingest

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// The ingest fuzz targets run the pure decode and validation steps of the
// handlers (the batch decoder, checkUploaded, protocol.ValidateDeviceEvent), the
// part a database round trip is too slow to fuzz. The differential test in
// internal/e2e covers the rest with PostgreSQL in the loop.

var fuzzNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

// checkHTTPError asserts a refusal is a 4xx, and a validation failure
// names a field (under prefix when given).
func checkHTTPError(t *testing.T, err error, prefix string) {
	t.Helper()
	if apperr.As(err) == nil {
		t.Fatalf("error %v (%T) is not a coded error", err, err)
	}
	status, er := service.ErrorResponse(err)
	if status < 400 || status > 499 {
		t.Fatalf("data error answered %d: %v", status, err)
	}
	if er.Error == protocol.ErrCodeValidation && (er.Field == "" || !strings.HasPrefix(er.Field, prefix)) {
		t.Fatalf("validation failure %v does not name a field under %q", err, prefix)
	}
}

func storable(t *testing.T, name, v string) {
	t.Helper()
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		t.Fatalf("accepted %s %q: PostgreSQL refuses it", name, v)
	}
}

// FuzzLogBatch decodes a /v2/ingest/logs body and checks every event as the
// handler does. Accepted events hold only what the tables store.
func FuzzLogBatch(f *testing.F) {
	now := fuzzNow.Add(-time.Minute).Format(time.RFC3339Nano)
	ev := func(seq int, extra string) string {
		return fmt.Sprintf(`{"event_id":"0190a6f0-0000-7000-8000-%012d","seq":%d,"agent_uid":"a","computer_name":"PC","user_sid":"S","datetime":"%s","received_at":"%s"%s}`, seq, seq, now, now, extra)
	}
	for _, s := range []string{
		`{"gateway_id":"gw","events":[` + ev(1, `,"type":"active_window","process_name":"p","window_title":"t","duration_seconds":5`) + `,` + ev(2, `,"type":"visited_site","url":"https://x/"`) + `]}`,
		`{"events":[` + ev(3, `,"type":"user_session","session_type":"login"`) + `],"drops":[{"reason":"retention","class":"log","count":2,"first_at":"` + now + `","last_at":"` + now + `"}]}`,
		`{"events":[` + ev(4, `,"type":"active_window","process_name":"p\u0000"`) + `]}`,
		`{"events":[` + ev(5, `,"type":"active_window","process_name":"p","duration_seconds":2147483648`) + `]}`,
		`{"events":[` + ev(6, `,"type":"visited_site","url":"u","datetime":"2026-03-17T11:59:59Z"`) + `]}`,
		`{"events":[` + ev(0, `,"type":"user_session","session_type":"login"`) + `]}`,
		`{"events":[` + ev(7, `,"type":"screenshot"`) + `]}`,
		`{"events":[{"seq":"1"}]}`, `{"events":[],"events":[]}`, `not json`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var b protocol.LogBatch
		if err := newDecoder().Unmarshal(body, &b); err != nil {
			checkHTTPError(t, err, "")
			return
		}
		for i := range b.Events {
			e := &b.Events[i]
			path := fmt.Sprintf("events[%d]", i)
			err := checkUploaded(e, path, fuzzNow, protocol.TypeActiveWindow, protocol.TypeVisitedSite, protocol.TypeUserSession)
			if err != nil {
				checkHTTPError(t, err, path+".")
				return
			}
			for name, v := range map[string]string{"event_id": e.EventID, "agent_uid": e.AgentUID, "computer_name": e.ComputerName,
				"user_sid": e.UserSID, "process_name": e.ProcessName, "window_title": e.WindowTitle, "url": e.URL, "title": e.Title, "session_type": e.SessionType} {
				storable(t, name, v)
			}
			if e.Seq <= 0 {
				t.Fatalf("accepted seq %d", e.Seq)
			}
			if d := e.DurationSeconds; d != nil && (*d < 0 || *d > math.MaxInt32) {
				t.Fatalf("accepted duration %d: the integer column refuses it", *d)
			}
			maxAge, _ := protocol.MaxEventAge(e.Type)
			if e.Datetime.Before(fuzzNow.Add(-maxAge)) || e.Datetime.After(fuzzNow.Add(protocol.MaxEventFuture)) {
				t.Fatalf("accepted %s at %v, outside its retention horizon", e.Type, e.Datetime)
			}
			// Idempotent: the checked event checks again.
			again := *e
			if err := checkUploaded(&again, path, fuzzNow, protocol.TypeActiveWindow, protocol.TypeVisitedSite, protocol.TypeUserSession); err != nil || again.EventID != e.EventID {
				t.Fatalf("second check: %v (%s → %s)", err, e.EventID, again.EventID)
			}
		}
	})
}

// FuzzDeviceEventBatch decodes a /v2/ingest/device-events body and checks
// every event with the rules the handler applies before its database
// checks. Accepted events fit the device_events columns.
func FuzzDeviceEventBatch(f *testing.F) {
	now := fuzzNow.Add(-time.Minute).Format(time.RFC3339Nano)
	for _, s := range []string{
		`{"events":[{"event_id":"0190a6f0-0000-7000-8000-000000000001","seq":1,"adapter_type":"hikvision","device_serial":"DS","device_id":3,"datetime":"` + now + `","employee_number":"E1","card_number":"1","door":1,"major_code":5,"minor_code":75,"verify_mode":"card","direction":"in"}]}`,
		`{"events":[{"event_id":"0190a6f0-0000-7000-8000-000000000002","seq":2,"adapter_type":"zkteco","device_serial":"Z\u0000","datetime":"` + now + `","major_code":0,"minor_code":0}]}`,
		`{"events":[{"event_id":"0190a6f0-0000-7000-8000-000000000003","seq":3,"adapter_type":"zkteco","device_serial":"Z","datetime":"` + now + `","door":2147483648,"major_code":-2147483649,"minor_code":0,"device_id":-1}]}`,
		`{"events":[{"adapter_type":5}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var b protocol.DeviceEventBatch
		if err := newDecoder().Unmarshal(body, &b); err != nil {
			checkHTTPError(t, err, "")
			return
		}
		for i := range b.Events {
			e := &b.Events[i]
			path := fmt.Sprintf("events[%d]", i)
			if err := protocol.ValidateDeviceEvent(e, path); err != nil {
				checkHTTPError(t, err, path+".")
				return
			}
			for name, v := range map[string]string{"adapter_type": e.AdapterType, "device_serial": e.DeviceSerial, "employee_number": e.EmployeeNumber,
				"card_number": e.CardNumber, "verify_mode": e.VerifyMode, "direction": e.Direction} {
				storable(t, name, v)
			}
			if e.MajorCode < math.MinInt32 || e.MajorCode > math.MaxInt32 || e.MinorCode < math.MinInt32 || e.MinorCode > math.MaxInt32 ||
				(e.Door != nil && (*e.Door < 0 || *e.Door > math.MaxInt32)) || (e.DeviceID != nil && *e.DeviceID <= 0) {
				t.Fatalf("accepted numbers out of column range: %+v", e)
			}
			if _, err := json.Marshal(e); err != nil {
				t.Fatalf("accepted event does not encode: %v", err)
			}
		}
	})
}
