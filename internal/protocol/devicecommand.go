package protocol

import (
	"bytes"
	"encoding/json"
)

// DeviceCommandPayload is the payload of a device_command gateway command:
// one operation on a door terminal behind the gateway. The device is named
// by DeviceID (the cloud's devices.id) or, for a device known only to the
// gateway's configuration, by DeviceSerial; when both are given the id is
// tried first.
type DeviceCommandPayload struct {
	// DeviceID is the cloud's devices.id (0 when absent).
	DeviceID int64 `json:"device_id,omitempty"`
	// DeviceSerial is the device's serial number.
	DeviceSerial string `json:"device_serial,omitempty"`
	// Command is the operation: open_door, close_door, door_always_open,
	// door_always_closed, reboot, get_info, sync_time (an adapter answers
	// "not supported" for one its device cannot do).
	Command string `json:"command"`
	// Door is the door number of the door commands (1 when zero).
	Door int `json:"door,omitempty"`
	// Params carries command-specific arguments (a JSON object).
	Params json.RawMessage `json:"params,omitempty"`
}

// DeviceCommandResult is the result of a completed device_command. A
// failed command (device offline past the deadline, refused, not
// supported) fails with the error instead.
type DeviceCommandResult struct {
	// Status is "ok".
	Status string `json:"status"`
	// Message is the device's own words (status string, reply code name).
	Message string `json:"message,omitempty"`
	// Data is the device's structured answer, when any (device info, …).
	Data json.RawMessage `json:"data,omitempty"`
	// DeviceSerial is the serial of the device that ran the command.
	DeviceSerial string `json:"device_serial"`
}

// Bounds of a device command payload.
const (
	// MaxDeviceCommandName bounds DeviceCommandPayload.Command.
	MaxDeviceCommandName = 64
	// MaxDeviceDoor bounds DeviceCommandPayload.Door.
	MaxDeviceDoor = 255
	// MaxDeviceCommandParams bounds DeviceCommandPayload.Params.
	MaxDeviceCommandParams = 16 << 10
)

// ValidateDeviceCommandPayload checks a device_command payload: a device
// (device_id positive or device_serial), a command name of lower-case
// letters, digits and underscores, door 0…255, params a JSON object of at
// most 16 KiB. The error names the field.
func ValidateDeviceCommandPayload(p *DeviceCommandPayload) error {
	if p.DeviceID < 0 {
		return fieldErr("device_id", "must be positive")
	}
	if err := checkText("device_serial", p.DeviceSerial, false, MaxShortField); err != nil {
		return err
	}
	if p.DeviceID == 0 && p.DeviceSerial == "" {
		return fieldErr("device_id", "is required (or device_serial)")
	}
	if p.Command == "" {
		return fieldErr("command", "is required")
	}
	if len(p.Command) > MaxDeviceCommandName {
		return fieldErr("command", "must be at most %d characters", MaxDeviceCommandName)
	}
	for _, r := range p.Command {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return fieldErr("command", "must be lower-case letters, digits and underscores, not %q", p.Command)
		}
	}
	if p.Door < 0 || p.Door > MaxDeviceDoor {
		return fieldErr("door", "must be between 0 and %d", MaxDeviceDoor)
	}
	if len(p.Params) > 0 && string(p.Params) != "null" {
		if len(p.Params) > MaxDeviceCommandParams {
			return fieldErr("params", "must be at most %d bytes", MaxDeviceCommandParams)
		}
		if t := bytes.TrimSpace(p.Params); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
			return fieldErr("params", "must be a JSON object")
		}
	}
	return nil
}
