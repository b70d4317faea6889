package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// deviceCommandHandler runs a device_command on the door terminal the
// payload names (device_id first, then device_serial) and returns the
// device's answer as a protocol.DeviceCommandResult. A device offline past
// the command's deadline, an unsupported command or a device error fails
// the command with that error.
func deviceCommandHandler(m *devices.Manager) executor.Handler {
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
		res, err := sup.Execute(ctx, devices.Command{Type: p.Command, Door: p.Door, Params: p.Params})
		if err != nil {
			return nil, fmt.Errorf("device_command: %w", err)
		}
		return json.Marshal(protocol.DeviceCommandResult{Status: protocol.DeviceCommandOK, Message: res.Message, Data: res.Data, DeviceSerial: sup.Status().Serial})
	}
}
