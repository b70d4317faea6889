package protocol

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// TestDeviceCommandPayloadDecoded: payloads as the gateway decodes them
// (see also TestDeviceCommandPayloadValidate).
func TestDeviceCommandPayloadDecoded(t *testing.T) {
	for _, tc := range []struct {
		body  string
		field string
	}{
		{`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "device_id": 12, "command": "open_door", "door": 1}`, ""},
		{`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "device_serial": "DS-K1T", "command": "reboot"}`, ""},
		{`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "device_id": 3, "command": "open_door", "params": {"duration": 5}}`, ""},
		{`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "command": "open_door"}`, "device_id"},
		{`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "device_id": -1, "command": "open_door"}`, "device_id"},
		{`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "device_serial": "a\u0000b", "command": "open_door"}`, "device_serial"},
		{`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "device_id": 1}`, "command"},
		{`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "device_id": 1, "command": "Open Door"}`, "command"},
		{`{"device_id": 1, "command": "open_door"}`, "device_command_id"},
		{`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "device_id": 1, "command": "` + strings.Repeat("a", 65) + `"}`, "command"},
		{`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "device_id": 1, "command": "open_door", "door": 65}`, "door"},
		{`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "device_id": 1, "command": "open_door", "params": [1]}`, "params"},
	} {
		var p DeviceCommandPayload
		if err := json.Unmarshal([]byte(tc.body), &p); err != nil {
			t.Fatal(err)
		}
		err := p.Validate()
		var fe *apperr.FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.body, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%s: got %v, want an error naming %s", tc.body, err, tc.field)
		}
	}
}

// FuzzDeviceCommandPayload: decoding and validating any payload never
// panics, and a payload that passes names a device and a command.
func FuzzDeviceCommandPayload(f *testing.F) {
	f.Add([]byte(`{"device_command_id": "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", "device_id": 12, "command": "open_door", "door": 1}`))
	f.Add([]byte(`{"device_serial": "x", "command": "reboot", "params": {"a": [1]}}`))
	f.Add([]byte(`{"device_id": -1, "command": ""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var p DeviceCommandPayload
		if json.Unmarshal(body, &p) != nil {
			return
		}
		if p.Validate() == nil && ((p.DeviceID <= 0 && p.DeviceSerial == "") || !slices.Contains(DeviceOperations(), p.Command) || p.DeviceCommandID == "") {
			t.Fatalf("accepted %+v", p)
		}
	})
}
