package devicecmd_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/devicecmd"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// FuzzRequestCheck: any command, door, params and expiry are either
// accepted — and then make a payload the gateway's validation accepts — or
// refused naming a field; never a panic.
func FuzzRequestCheck(f *testing.F) {
	f.Add("open_door", 1, []byte(`{"seconds":3}`), int64(60))
	f.Add("reboot", 0, []byte(`null`), int64(0))
	f.Add("x", -1, []byte(`[1]`), int64(-5))
	f.Add("get_info", 65, []byte(`{"a":`), int64(1<<40))
	f.Fuzz(func(t *testing.T, command string, door int, params []byte, ttlSeconds int64) {
		r := devicecmd.Request{DeviceID: 1, Command: command, Door: door, Params: params, TTL: time.Duration(ttlSeconds) * time.Second}
		err := r.Check()
		if err != nil {
			if e := apperr.As(err); e == nil || e.Field == "" {
				t.Fatalf("refusal without a field: %v", err)
			}
			return
		}
		p := protocol.DeviceCommandPayload{DeviceCommandID: "0199a2b4-0000-7000-8000-000000000000", DeviceID: 1, Command: command, Door: door}
		if len(params) > 0 && string(params) != "null" {
			p.Params = json.RawMessage(params)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted %+v, but the payload is refused: %v", r, err)
		}
	})
}
