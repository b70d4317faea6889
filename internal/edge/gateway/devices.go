package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// deviceCommandHandler runs a device_command on the door terminal the
// payload names (device_id first, then device_serial) and returns the
// device's answer as a protocol.DeviceCommandResult. A device offline past
// the command's deadline, an unsupported command or a device error fails
// the command with that error. The wait for an offline device ends at the
// command's expires_at, or after maxWait when that is sooner (0: the
// supervisor's command timeout alone).
func deviceCommandHandler(m *devices.Manager, maxWait time.Duration) executor.Handler {
	return func(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
		var p protocol.DeviceCommandPayload
		dec := json.NewDecoder(bytes.NewReader(cmd.Payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("device_command: payload: %w", err)
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("device_command: payload: %w", err)
		}
		var sup *devices.Supervisor
		ok := false
		if p.DeviceID > 0 {
			sup, ok = m.Supervisor(strconv.FormatInt(p.DeviceID, 10))
		}
		if !ok && p.DeviceSerial != "" {
			sup, ok = m.Supervisor(p.DeviceSerial)
		}
		if !ok {
			return nil, fmt.Errorf("device_command: device_id %d / device_serial %q: %w on this gateway", p.DeviceID, p.DeviceSerial, devices.ErrUnknownDevice)
		}
		// The command's expiry bounds the wait for an offline device (and
		// maxWait, device.command_timeout, still caps it): a door must not
		// open after the moment the cloud gave up on the command.
		if !cmd.ExpiresAt.IsZero() {
			if !time.Now().Before(cmd.ExpiresAt) {
				return nil, fmt.Errorf("device_command: expired at %s before it could run", cmd.ExpiresAt.UTC().Format(time.RFC3339))
			}
			dl := cmd.ExpiresAt
			if maxWait > 0 && time.Until(dl) > maxWait {
				dl = time.Now().Add(maxWait)
			}
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl)
			defer cancel()
		}
		res, err := sup.Execute(ctx, devices.Command{Type: p.Command, Door: p.Door, Params: p.Params})
		if err != nil {
			return nil, fmt.Errorf("device_command: %w", err)
		}
		return json.Marshal(protocol.DeviceCommandResult{Status: protocol.DeviceCommandOK, Message: res.Message, Data: res.Data, DeviceSerial: sup.Status().Serial})
	}
}

// cloudDevicesKey is the buffer state key of the last device list the
// cloud sent (a devices_update payload, JSON), applied again at start.
const cloudDevicesKey = "cloud_devices"

// deviceLists holds the two sources of the gateway's devices: gateway.yml's
// list and the cloud's last devices_update.
type deviceLists struct {
	m     *devices.Manager
	local []devices.Config
	store interface {
		State(ctx context.Context, key string) (string, error)
		SetState(ctx context.Context, key, value string) error
	}
	log interface {
		WarnContext(ctx context.Context, msg string, args ...any)
	}
}

// refusedDevice is a device of the cloud's list the gateway does not run.
type refusedDevice struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// merge is the list to run: gateway.yml's devices, then the cloud's that
// are valid and do not take a local device's name (the local one wins:
// the site's own file is the last word on its LAN).
func (l *deviceLists) merge(p protocol.DevicesPayload) ([]devices.Config, []refusedDevice) {
	out := append([]devices.Config(nil), l.local...)
	names := map[string]bool{}
	for _, c := range l.local {
		names[c.Name] = true
	}
	var refused []refusedDevice
	for _, d := range p.Devices {
		c := devices.Config{ID: d.ID, Name: d.Name, Type: d.AdapterType, Host: d.Host, Port: d.Port, Serial: d.Serial, Settings: d.Config}
		if names[c.Name] {
			refused = append(refused, refusedDevice{Name: c.Name, Error: "a device of gateway.yml has this name"})
			continue
		}
		if err := l.m.Validate([]devices.Config{c}); err != nil {
			refused = append(refused, refusedDevice{Name: c.Name, Error: err.Error()})
			continue
		}
		names[c.Name] = true
		out = append(out, c)
	}
	return out, refused
}

// stored reads the cloud's last list (version 0 and no devices when none).
func (l *deviceLists) stored(ctx context.Context) (protocol.DevicesPayload, error) {
	var p protocol.DevicesPayload
	v, err := l.store.State(ctx, cloudDevicesKey)
	if err != nil || v == "" {
		return p, err
	}
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return protocol.DevicesPayload{}, fmt.Errorf("gateway: the stored device list: %w", err)
	}
	return p, nil
}

// restore applies gateway.yml's devices with the cloud's last list.
func (l *deviceLists) restore(ctx context.Context) error {
	p, err := l.stored(ctx)
	if err != nil {
		return err
	}
	list, refused := l.merge(p)
	for _, r := range refused {
		l.log.WarnContext(ctx, "a device of the cloud's list is not run", "device", r.Name, "err", r.Error)
	}
	return l.m.Apply(ctx, list)
}

// devicesUpdateHandler applies a devices_update: the cloud's whole list,
// ignored when older than the one applied; stored before it is applied, so
// a restart runs it too. A device of the list that is invalid, or takes a
// name of gateway.yml, is left out and named in the result; the others run.
func devicesUpdateHandler(l *deviceLists) executor.Handler {
	return func(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
		var p protocol.DevicesPayload
		dec := json.NewDecoder(bytes.NewReader(cmd.Payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("devices_update: payload: %w", err)
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("devices_update: payload: %w", err)
		}
		old, err := l.stored(ctx)
		if err != nil {
			return nil, err
		}
		type result struct {
			AppliedVersion int64           `json:"applied_version"`
			Ignored        bool            `json:"ignored,omitempty"`
			Devices        int             `json:"devices"`
			Refused        []refusedDevice `json:"refused,omitempty"`
		}
		if old.Version >= p.Version && old.Version > 0 {
			return json.Marshal(result{AppliedVersion: old.Version, Ignored: true, Devices: len(old.Devices)})
		}
		list, refused := l.merge(p)
		raw, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		if err := l.store.SetState(ctx, cloudDevicesKey, string(raw)); err != nil {
			return nil, fmt.Errorf("devices_update: %w", err)
		}
		if err := l.m.Apply(ctx, list); err != nil {
			return nil, fmt.Errorf("devices_update: %w", err)
		}
		return json.Marshal(result{AppliedVersion: p.Version, Devices: len(list) - len(l.local), Refused: refused})
	}
}
