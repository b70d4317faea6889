package protocol

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Device commands and the device list (issue 16). A device_command gateway
// command carries DeviceCommandPayload and is answered with
// DeviceCommandResult; a devices_update command carries DevicesPayload, the
// gateway's whole device list.
const (
	// CommandDevicesUpdate replaces the gateway's device list with the
	// payload's (DevicesPayload): the devices rows of the gateway's
	// organisation assigned to it. Sent when a row changes.
	CommandDevicesUpdate = "devices_update"
)

// Device operations a device_command may ask (DeviceCommandPayload.Command).
const (
	DeviceOpenDoor         = "open_door"
	DeviceCloseDoor        = "close_door"
	DeviceDoorAlwaysOpen   = "door_always_open"
	DeviceDoorAlwaysClosed = "door_always_closed"
	DeviceReboot           = "reboot"
	DeviceGetInfo          = "get_info"
	DeviceSyncTime         = "sync_time"
)

// DeviceOperations lists the operations a device_command may ask.
func DeviceOperations() []string {
	return []string{DeviceOpenDoor, DeviceCloseDoor, DeviceDoorAlwaysOpen, DeviceDoorAlwaysClosed, DeviceReboot, DeviceGetInfo, DeviceSyncTime}
}

// Bounds of the device payloads.
const (
	// MaxDevicesPerGateway bounds a DevicesPayload.
	MaxDevicesPerGateway = 500
	// MaxDeviceConfigBytes bounds one device's adapter settings (JSON).
	MaxDeviceConfigBytes = 16 << 10
	// MaxDoor is the highest door number a command may name.
	MaxDoor = 64
	// MaxDeviceCommandParams bounds DeviceCommandPayload.Params.
	MaxDeviceCommandParams = 16 << 10
)

// DeviceCommandPayload is the payload of a device_command gateway command:
// one operation on one device behind the gateway.
type DeviceCommandPayload struct {
	// DeviceCommandID is the cloud's device_commands row the result is
	// recorded in (a UUID).
	DeviceCommandID string `json:"device_command_id"`
	// DeviceID is the cloud's devices.id; the gateway finds the device by
	// it (or by DeviceSerial when it is 0).
	DeviceID     int64  `json:"device_id,omitempty"`
	DeviceSerial string `json:"device_serial,omitempty"`
	// Command is one of DeviceOperations().
	Command string `json:"command"`
	// Door is the door number of the door operations (1 when 0).
	Door int `json:"door,omitempty"`
	// Params carries operation-specific arguments (a JSON object).
	Params json.RawMessage `json:"params,omitempty"`
}

// Validate checks the payload, naming the field.
func (p *DeviceCommandPayload) Validate() error {
	if _, ok := CanonicalEventID(p.DeviceCommandID); !ok {
		return fieldErr("device_command_id", "must be a UUID")
	}
	if p.DeviceID < 0 {
		return fieldErr("device_id", "must not be negative")
	}
	if p.DeviceID == 0 && p.DeviceSerial == "" {
		return fieldErr("device_id", "is required (or device_serial)")
	}
	if err := checkText("device_serial", p.DeviceSerial, false, MaxShortField); err != nil {
		return err
	}
	if !slices.Contains(DeviceOperations(), p.Command) {
		return fieldErr("command", "must be one of %v", DeviceOperations())
	}
	if p.Door < 0 || p.Door > MaxDoor {
		return fieldErr("door", "must be between 0 and %d", MaxDoor)
	}
	if len(p.Params) > MaxDeviceCommandParams {
		return fieldErr("params", "must be at most %d bytes", MaxDeviceCommandParams)
	}
	if len(p.Params) > 0 && string(p.Params) != "null" && !isJSONObject(p.Params) {
		return fieldErr("params", "must be a JSON object")
	}
	return nil
}

// Device command outcomes (DeviceCommandResult.Status).
const (
	DeviceCommandOK     = "ok"
	DeviceCommandFailed = "failed"
)

// DeviceCommandResult is the result of a device_command: what the device
// answered. A command the device refused or could not be reached for is
// acknowledged with Status failed (the command ran: it is not retried).
type DeviceCommandResult struct {
	// Status is DeviceCommandOK or DeviceCommandFailed.
	Status string `json:"status"`
	// DeviceSerial is the serial of the device that answered.
	DeviceSerial string `json:"device_serial,omitempty"`
	// Message is the device's own words or the failure.
	Message string `json:"message,omitempty"`
	// Data is any structured answer (device info, …).
	Data json.RawMessage `json:"data,omitempty"`
}

// DeviceConfig is one device in a DevicesPayload (and in gateway.yml's
// devices list): where it is and the adapter's settings.
type DeviceConfig struct {
	// ID is the cloud's devices.id (0 for a device only in gateway.yml).
	ID int64 `json:"id,omitempty"`
	// Name is unique per gateway.
	Name string `json:"name"`
	// AdapterType is "hikvision" or "zkteco".
	AdapterType string `json:"adapter_type"`
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Serial      string `json:"serial,omitempty"`
	// Config is the adapter's settings, valid against its JSON Schema.
	Config json.RawMessage `json:"config,omitempty"`
}

// DevicesPayload is the payload of a devices_update command.
type DevicesPayload struct {
	// Version increases with every change of the gateway's devices; a
	// gateway ignores a payload older than the one it applied.
	Version int64 `json:"version"`
	// Devices is the whole list.
	Devices []DeviceConfig `json:"devices"`
}

// Validate checks the list's shape, naming the field (the adapter settings
// are checked against the adapter's schema by the gateway).
func (p *DevicesPayload) Validate() error {
	if p.Version < 0 {
		return fieldErr("version", "must not be negative")
	}
	if len(p.Devices) > MaxDevicesPerGateway {
		return fieldErr("devices", "at most %d devices per gateway", MaxDevicesPerGateway)
	}
	names := map[string]bool{}
	for i, d := range p.Devices {
		path := fmt.Sprintf("devices/%d/", i)
		switch {
		case d.Name == "" || len(d.Name) > MaxShortField:
			return fieldErr(path+"name", "is required, at most %d bytes", MaxShortField)
		case names[d.Name]:
			return fieldErr(path+"name", "must be unique on the gateway")
		case d.AdapterType == "" || len(d.AdapterType) > MaxAdapterTypeField:
			return fieldErr(path+"adapter_type", "is required")
		case d.Host == "" || len(d.Host) > 255:
			return fieldErr(path+"host", "is required, at most 255 bytes")
		case d.Port < 1 || d.Port > 65535:
			return fieldErr(path+"port", "must be between 1 and 65535")
		case len(d.Serial) > MaxShortField:
			return fieldErr(path+"serial", "must be at most %d bytes", MaxShortField)
		case len(d.Config) > MaxDeviceConfigBytes:
			return fieldErr(path+"config", "must be at most %d bytes", MaxDeviceConfigBytes)
		case len(d.Config) > 0 && !isJSONObject(d.Config):
			return fieldErr(path+"config", "must be a JSON object")
		}
		names[d.Name] = true
	}
	return nil
}

// isJSONObject reports whether b is one JSON object.
func isJSONObject(b json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}
