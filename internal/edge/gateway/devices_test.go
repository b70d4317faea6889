package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/health"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// terminal is a minimal door terminal for the wiring tests (the
// supervisor's own tests drive failures with a scripted adapter): one
// stored event, a quiet live stream, commands answered at once.
type terminal struct{}

func (terminal) Connect(context.Context) error { return nil }
func (terminal) Close() error                  { return nil }
func (terminal) Info(context.Context) (devices.Info, error) {
	return devices.Info{Serial: "TERM-1", Model: "test"}, nil
}
func (terminal) Execute(_ context.Context, cmd devices.Command) (devices.Result, error) {
	if cmd.Type == devices.CmdReboot {
		return devices.Result{}, devices.ErrUnsupported
	}
	return devices.Result{Message: "done " + cmd.Type, Data: json.RawMessage(`{"door":1}`)}, nil
}
func (terminal) Fetch(_ context.Context, since devices.Cursor, page func([]devices.Event, devices.Cursor) error) error {
	if since != "" {
		return nil
	}
	return page([]devices.Event{{Key: "1", Time: time.Now(), EmployeeNumber: "7"}}, "1")
}
func (terminal) Subscribe(ctx context.Context, _ func(devices.Event)) error {
	<-ctx.Done()
	return ctx.Err()
}

func terminalFactory() devices.Factory {
	return devices.Factory{Type: "terminal", Vendor: "test", Version: "1",
		Schema: json.RawMessage(`{"type":"object","properties":{"pin":{"type":"integer"}},"additionalProperties":false}`),
		New:    func(devices.Config) (devices.Adapter, error) { return terminal{}, nil }}
}

func TestDevicesWiring(t *testing.T) {
	cloud := newCloud(t)
	list := `[{"name":"front","adapter_type":"terminal","host":"127.0.0.1","port":1,"id":12,"config":{"pin":1}}]`
	cfg := testConfig(t, t.TempDir(), cloud.URL, map[string]string{"STAFF_GATEWAY_DEVICES": list})

	// Without the factory, the device's type is a configuration error.
	if _, err := New(context.Background(), cfg, Deps{Logger: logtest.New(t)}); err == nil || !strings.Contains(err.Error(), "devices[0].adapter_type") {
		t.Fatalf("unknown adapter type: %v", err)
	}
	bad := testConfig(t, t.TempDir(), cloud.URL, map[string]string{"STAFF_GATEWAY_DEVICES": strings.Replace(list, `"pin":1`, `"pin":"x"`, 1)})
	if _, err := New(context.Background(), bad, Deps{Logger: logtest.New(t), DeviceFactories: []devices.Factory{terminalFactory()}}); err == nil ||
		!strings.Contains(err.Error(), "devices[0].config.pin") {
		t.Fatalf("bad settings: %v", err)
	}

	g := startWith(t, cfg, Deps{Version: "test", DeviceFactories: []devices.Factory{terminalFactory()}})
	defer stop(t, g)
	base := "http://" + g.HealthAddr()
	var d health.Details
	waitFor(t, "device online in /health/details", func() bool {
		d = health.Details{}
		getJSON(t, base+"/health/details", &d)
		return len(d.Devices) == 1 && d.Devices[0].State == devices.StateOnline
	})
	if st := d.Devices[0]; st.Name != "front" || st.Serial != "TERM-1" || st.Counts.CatchupEvents != 1 {
		t.Fatalf("device status %+v", st)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`gateway_device_connected{adapter_type="terminal",device="front"} 1`,
		`gateway_device_events_total{adapter_type="terminal",device="front",source="catchup"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	h := deviceCommandHandler(g.devices, 0)
	// run sends payload as the cloud does, with its device_commands row's id.
	run := func(payload string) (protocol.DeviceCommandResult, error) {
		payload = `{"device_command_id":"0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b",` + payload[1:]
		var r protocol.DeviceCommandResult
		raw, err := h(context.Background(), protocol.Command{ID: "c1", Type: protocol.CommandDeviceCommand, Payload: json.RawMessage(payload)})
		if err == nil {
			err = json.Unmarshal(raw, &r)
		}
		return r, err
	}
	for _, p := range []string{`{"device_id":12,"command":"open_door","door":1}`, `{"device_serial":"TERM-1","command":"open_door"}`,
		`{"device_id":99,"device_serial":"TERM-1","command":"open_door"}`} {
		r, err := run(p)
		if err != nil || r.Status != "ok" || r.Message != "done open_door" || r.DeviceSerial != "TERM-1" || string(r.Data) != `{"door":1}` {
			t.Fatalf("%s: %+v %v", p, r, err)
		}
	}
	// The command's expires_at bounds it: one past it does not run, one
	// before it does.
	open := json.RawMessage(`{"device_command_id":"0190a5c4-7c1d-7a3e-9f1e-1c2d3e4f5a6b","device_id":12,"command":"open_door"}`)
	if _, err := h(context.Background(), protocol.Command{ID: "c2", Type: protocol.CommandDeviceCommand, Payload: open,
		ExpiresAt: time.Now().Add(-time.Second)}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired command: %v", err)
	}
	if _, err := h(context.Background(), protocol.Command{ID: "c3", Type: protocol.CommandDeviceCommand, Payload: open,
		ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
		t.Fatalf("command before its expiry: %v", err)
	}
	if _, err := run(`{"device_id":12,"command":"reboot"}`); !errors.Is(err, devices.ErrUnsupported) {
		t.Fatalf("unsupported: %v", err)
	}
	if _, err := run(`{"device_id":13,"command":"open_door"}`); !errors.Is(err, devices.ErrUnknownDevice) {
		t.Fatalf("unknown device: %v", err)
	}
	if _, err := run(`{"command":"open_door"}`); err == nil || !strings.Contains(err.Error(), "device_id") {
		t.Fatalf("no device: %v", err)
	}
	if _, err := run(`{"device_id":12,"command":"open_door","dor":1}`); err == nil || !strings.Contains(err.Error(), "dor") {
		t.Fatalf("unknown field: %v", err)
	}
}

// TestDevicesUpdate: the cloud's device list joins gateway.yml's (a name of
// gateway.yml and an invalid device are left out and named, the others
// run), an older list is ignored, and the list is stored: a gateway
// started again on the same buffer runs it before any command arrives.
func TestDevicesUpdate(t *testing.T) {
	cloud := newCloud(t)
	dir := t.TempDir()
	local := `[{"name":"front","adapter_type":"terminal","host":"127.0.0.1","port":1,"config":{"pin":1}}]`
	cfg := testConfig(t, dir, cloud.URL, map[string]string{"STAFF_GATEWAY_DEVICES": local})
	deps := Deps{Version: "test", DeviceFactories: []devices.Factory{terminalFactory()}}
	g := startWith(t, cfg, deps)
	names := func(g *Gateway) string {
		var out []string
		for _, st := range g.devices.Statuses() {
			out = append(out, st.Name)
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	res := devicesUpdateHandlerResult(t, g, `{"version": 2, "devices": [
		{"id": 5, "name": "back", "adapter_type": "terminal", "host": "127.0.0.1", "port": 2, "config": {"pin": 2}},
		{"id": 6, "name": "front", "adapter_type": "terminal", "host": "127.0.0.1", "port": 3},
		{"id": 7, "name": "broken", "adapter_type": "terminal", "host": "127.0.0.1", "port": 4, "config": {"pin": "x"}},
		{"id": 8, "name": "alien", "adapter_type": "nonesuch", "host": "127.0.0.1", "port": 5}]}`)
	if res["applied_version"] != 2.0 || res["devices"] != 1.0 {
		t.Fatalf("applied: %v", res)
	}
	refused, _ := json.Marshal(res["refused"])
	for _, want := range []string{`"front"`, `"broken"`, "config.pin", `"alien"`, "adapter_type"} {
		if !strings.Contains(string(refused), want) {
			t.Errorf("refused %s lacks %s", refused, want)
		}
	}
	if got := names(g); got != "back,front" {
		t.Fatalf("running %s, want back,front", got)
	}
	if res := devicesUpdateHandlerResult(t, g, `{"version": 1, "devices": []}`); res["ignored"] != true || res["applied_version"] != 2.0 {
		t.Fatalf("older list: %v", res)
	}
	if got := names(g); got != "back,front" {
		t.Fatalf("after an older list: running %s", got)
	}
	if _, err := devicesUpdateHandler(g.deviceLists)(context.Background(), protocol.Command{ID: "d", Type: protocol.CommandDevicesUpdate,
		Payload: json.RawMessage(`{"version": 3, "devices": [{"name": "x", "adapter_type": "terminal", "host": "h", "port": 0}]}`)}); err == nil ||
		!strings.Contains(err.Error(), "devices/0/port") {
		t.Fatalf("bad payload: %v", err)
	}
	stop(t, g)

	g2 := startWith(t, testConfig(t, dir, cloud.URL, map[string]string{"STAFF_GATEWAY_DEVICES": local}), deps)
	defer stop(t, g2)
	if got := names(g2); got != "back,front" {
		t.Fatalf("after a restart: running %s, want back,front", got)
	}
	// An empty list from the cloud leaves gateway.yml's.
	if res := devicesUpdateHandlerResult(t, g2, `{"version": 4, "devices": []}`); res["devices"] != 0.0 {
		t.Fatalf("empty list: %v", res)
	}
	if got := names(g2); got != "front" {
		t.Fatalf("after an empty list: running %s, want front", got)
	}
}

// devicesUpdateHandlerResult runs a devices_update on g and decodes its
// result.
func devicesUpdateHandlerResult(t *testing.T, g *Gateway, payload string) map[string]any {
	t.Helper()
	raw, err := devicesUpdateHandler(g.deviceLists)(context.Background(), protocol.Command{ID: "e", Type: protocol.CommandDevicesUpdate, Payload: json.RawMessage(payload)})
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDeviceStatesInHeartbeat: the heartbeat reports the devices the cloud
// knows (a devices row id) with the cloud's status vocabulary.
func TestDeviceStatesInHeartbeat(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	got := deviceStates([]devices.Status{
		{ID: 1, State: devices.StateOnline, Serial: "A", LastEventAt: &at},
		{ID: 2, State: devices.StateConnecting},
		{ID: 3, State: devices.StateBackoff},
		{ID: 4, State: devices.StateIsolated},
		{ID: 5, State: devices.StateAuthFailed},
		{ID: 6, State: devices.StateStopped},
		{Name: "local only", State: devices.StateOnline},
	})
	want := []protocol.DeviceState{{ID: 1, Status: "online", Serial: "A", LastEventAt: &at}, {ID: 2, Status: "offline"}, {ID: 3, Status: "error"},
		{ID: 4, Status: "error"}, {ID: 5, Status: "auth_failed"}, {ID: 6, Status: "offline"}}
	if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); len(got) != len(want) || g != w {
		t.Fatalf("states %s, want %s", g, w)
	}
	for _, d := range got {
		if !slices.Contains(protocol.DeviceStatuses(), d.Status) {
			t.Errorf("status %q is not one the cloud stores", d.Status)
		}
	}
}
