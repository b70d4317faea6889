package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

func TestDeviceCommandPayloadValidate(t *testing.T) {
	ok := DeviceCommandPayload{DeviceCommandID: "0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b", DeviceID: 7, Command: DeviceOpenDoor, Door: 1}
	for _, tc := range []struct {
		name  string
		edit  func(p *DeviceCommandPayload)
		field string
	}{
		{"valid", func(*DeviceCommandPayload) {}, ""},
		{"by serial", func(p *DeviceCommandPayload) { p.DeviceID, p.DeviceSerial = 0, "SN-1" }, ""},
		{"with params", func(p *DeviceCommandPayload) { p.Params = json.RawMessage(`{"seconds":5}`) }, ""},
		{"bad id", func(p *DeviceCommandPayload) { p.DeviceCommandID = "x" }, "device_command_id"},
		{"no device", func(p *DeviceCommandPayload) { p.DeviceID = 0 }, "device_id"},
		{"negative device", func(p *DeviceCommandPayload) { p.DeviceID = -1 }, "device_id"},
		{"long serial", func(p *DeviceCommandPayload) { p.DeviceSerial = strings.Repeat("s", 256) }, "device_serial"},
		{"unknown command", func(p *DeviceCommandPayload) { p.Command = "explode" }, "command"},
		{"door too high", func(p *DeviceCommandPayload) { p.Door = MaxDoor + 1 }, "door"},
		{"params not an object", func(p *DeviceCommandPayload) { p.Params = json.RawMessage(`[1]`) }, "params"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.edit(&p)
			checkField(t, p.Validate(), tc.field)
		})
	}
}

func TestDevicesPayloadValidate(t *testing.T) {
	dev := DeviceConfig{Name: "front", AdapterType: "hikvision", Host: "10.0.0.5", Port: 80, Config: json.RawMessage(`{"username":"admin"}`)}
	for _, tc := range []struct {
		name  string
		edit  func(p *DevicesPayload)
		field string
	}{
		{"valid", func(*DevicesPayload) {}, ""},
		{"empty list", func(p *DevicesPayload) { p.Devices = nil }, ""},
		{"negative version", func(p *DevicesPayload) { p.Version = -1 }, "version"},
		{"duplicate name", func(p *DevicesPayload) { p.Devices = append(p.Devices, p.Devices[0]) }, "devices/1/name"},
		{"no name", func(p *DevicesPayload) { p.Devices[0].Name = "" }, "devices/0/name"},
		{"no type", func(p *DevicesPayload) { p.Devices[0].AdapterType = "" }, "devices/0/adapter_type"},
		{"no host", func(p *DevicesPayload) { p.Devices[0].Host = "" }, "devices/0/host"},
		{"port 0", func(p *DevicesPayload) { p.Devices[0].Port = 0 }, "devices/0/port"},
		{"port too high", func(p *DevicesPayload) { p.Devices[0].Port = 70000 }, "devices/0/port"},
		{"config not an object", func(p *DevicesPayload) { p.Devices[0].Config = json.RawMessage(`"x"`) }, "devices/0/config"},
		{"config too large", func(p *DevicesPayload) {
			p.Devices[0].Config = json.RawMessage(`{"a":"` + strings.Repeat("x", MaxDeviceConfigBytes) + `"}`)
		}, "devices/0/config"},
		{"too many", func(p *DevicesPayload) {
			p.Devices = make([]DeviceConfig, MaxDevicesPerGateway+1)
		}, "devices"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DevicesPayload{Version: 3, Devices: []DeviceConfig{dev}}
			tc.edit(&p)
			checkField(t, p.Validate(), tc.field)
		})
	}
}

// checkField fails unless err is nil for field "" or a FieldError naming
// field.
func checkField(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var fe *apperr.FieldError
	if !errors.As(err, &fe) || fe.Field != field {
		t.Fatalf("error %v, want one naming %q", err, field)
	}
}
