package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/devicecmd"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/hikvision"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/vendors"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/zkteco"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/hiksim"
	"github.com/staffcontrol/staffcontrol/internal/sim/zksim"
	"github.com/staffcontrol/staffcontrol/internal/zkproto"
)

// devWorld is the real Agent API over a fresh database with two
// organisations (Alpha, with a provisioned gateway and two employees, and
// Beta), and the cloud's device command service as the Dashboard runs it.
type devWorld struct {
	api     *httptest.Server
	admin   *pgx.Conn
	dash    *pgxpool.Pool
	svc     *devicecmd.Service
	tenant  postgres.Tenant
	orgID   int64
	otherID int64
	gateway uuid.UUID
	key     string
}

func newDevWorld(t *testing.T) *devWorld {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	ing, err := postgres.Connect(ctx, db.IngestURL, 10, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ing.Close)
	// Short acknowledgement and execution deadlines and a fast sweep, so a
	// command that cannot run ends within seconds.
	stack := startAgentAPI(t, ing, service.NewRegistry(), agentapi.Config{
		Queue:   commandqueue.Options{AckTimeout: 5 * time.Second, ExecTimeout: 30 * time.Second, Backoff: 200 * time.Millisecond},
		Control: control.Options{SweepInterval: 100 * time.Millisecond}, AdvanceInterval: 200 * time.Millisecond})
	w := &devWorld{api: httptest.NewServer(stack.routes)}
	t.Cleanup(func() { stack.stop(); w.api.CloseClientConnections(); w.api.Close() })
	w.dash, err = postgres.Connect(ctx, db.DashboardURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.dash.Close)
	adminDB := pg.Pool(t, db.PlatformAdminURL, 2)
	acc := accounts.New(adminDB, time.Now)
	admin := accounts.Actor{Name: "e2e", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	o, err := acc.CreateOrganization(ctx, admin, "Alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := acc.CreateOrganization(ctx, admin, "Beta", "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := acc.RegisterGateway(ctx, admin, o.ID, "GW-DEV", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gw, key, err := stack.gws.Provision(ctx, o.ID, "GW-DEV", r.ProvisioningToken)
	if err != nil {
		t.Fatal(err)
	}
	w.orgID, w.otherID, w.gateway, w.key = o.ID, other.ID, gw.ID, key
	w.tenant = postgres.Tenant{OrganizationID: o.ID, Role: postgres.AppOrgAdmin, Actor: "e2e"}
	if w.admin, err = pgx.Connect(ctx, db.AdminURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.admin.Close(context.Background()) })
	q, err := commandqueue.New(w.dash, commandqueue.Options{}, service.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w.svc = devicecmd.New(w.dash, q)
	// Employees of Alpha with the numbers the simulators' first users carry
	// (1001, 1002); the others (1003…) are people the cloud does not know.
	for _, n := range []string{"1001", "1002"} {
		if _, err := w.admin.Exec(ctx, `INSERT INTO employees (organization_id, employee_number, first_name, last_name) VALUES ($1, $2, 'E', $2)`,
			o.ID, n); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// addDevice creates a devices row of Alpha assigned to the gateway and
// returns its id (the list is sent by sync).
func (w *devWorld) addDevice(t *testing.T, name, typ, addr string, settings any) int64 {
	t.Helper()
	host, port := splitHostPort(t, addr)
	raw, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := w.admin.QueryRow(context.Background(), `INSERT INTO devices (organization_id, gateway_id, name, adapter_type, host, port, config)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, w.orgID, w.gateway, name, typ, host, port, raw).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// sync sends the gateway its device list (devices_update).
func (w *devWorld) sync(t *testing.T) {
	t.Helper()
	if _, err := w.svc.SyncGateway(context.Background(), w.tenant, w.gateway, "e2e"); err != nil {
		t.Fatal(err)
	}
}

// send sends a device command through the cloud.
func (w *devWorld) send(t *testing.T, r devicecmd.Request) devicecmd.Command {
	t.Helper()
	r.CreatedBy = "e2e"
	c, err := w.svc.Send(context.Background(), w.tenant, r)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// get reads a device command.
func (w *devWorld) get(t *testing.T, id uuid.UUID) devicecmd.Command {
	t.Helper()
	c, err := w.svc.Get(context.Background(), w.tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitCommand waits for a device command to reach a final state.
func (w *devWorld) waitCommand(t *testing.T, id uuid.UUID, within time.Duration) devicecmd.Command {
	t.Helper()
	var c devicecmd.Command
	waitUntil(t, "device command "+id.String()+" final", within, func() bool { c = w.get(t, id); return c.Final() })
	return c
}

// devRow is one stored device event.
type devRow struct {
	org    int64
	serial string
	emp    string
	n      int
}

// stored reads every device event the cloud holds (both the partitioned
// table and the fallback), per event id.
func (w *devWorld) stored(t *testing.T) map[string]*devRow {
	t.Helper()
	rows, err := w.admin.Query(context.Background(), `SELECT id::text, organization_id, device_serial, coalesce(employee_number, '') FROM monitoring.device_events
		UNION ALL SELECT id::text, organization_id, device_serial, coalesce(employee_number, '') FROM monitoring_fallback.device_events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]*devRow{}
	for rows.Next() {
		var id string
		var r devRow
		if err := rows.Scan(&id, &r.org, &r.serial, &r.emp); err != nil {
			t.Fatal(err)
		}
		if p := out[id]; p != nil {
			p.n++
			continue
		}
		r.n = 1
		out[id] = &r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// hasAll reports whether every id of want is stored.
func (w *devWorld) hasAll(t *testing.T, want map[string]string) bool {
	got := w.stored(t)
	for id := range want {
		if got[id] == nil {
			return false
		}
	}
	return true
}

// checkExactlyOnce fails the test unless the cloud holds exactly the
// events of want (id → device serial), each once, in Alpha.
func (w *devWorld) checkExactlyOnce(t *testing.T, want map[string]string) {
	t.Helper()
	got := w.stored(t)
	missing, dup, foreign := 0, 0, 0
	for id, serial := range want {
		r := got[id]
		switch {
		case r == nil:
			missing++
			if missing <= 5 {
				t.Errorf("event %s of %s never reached the cloud", id, serial)
			}
		case r.n != 1:
			dup++
			t.Errorf("event %s of %s stored %d times", id, serial, r.n)
		case r.org != w.orgID || r.serial != serial:
			foreign++
			t.Errorf("event %s stored for organisation %d device %q, want %d %q", id, r.org, r.serial, w.orgID, serial)
		}
	}
	for id, r := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("the cloud holds event %s (device %q) that no simulator recorded", id, r.serial)
		}
	}
	var n int
	if err := w.admin.QueryRow(context.Background(), `SELECT count(*) FROM monitoring.device_events WHERE organization_id = $1`, w.otherID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("organisation Beta holds %d device events, want none", n)
	}
	if missing > 0 || dup > 0 || foreign > 0 {
		t.Fatalf("%d of %d events missing, %d duplicated, %d misplaced", missing, len(want), dup, foreign)
	}
}

// hikIDs are the event ids of every event a Hikvision simulator recorded.
func hikIDs(s *hiksim.Sim, serial string, into map[string]string) {
	for _, e := range s.Events() {
		into[devices.EventID(hikvision.Type, serial, strconv.FormatInt(e.SerialNo, 10))] = serial
	}
}

// zkIDs are the event ids of every record a ZKTeco simulator holds (the
// adapter's key: user id, device time, status, punch). Two records with
// one key are one event to anybody (the device numbers nothing), so the
// tests badge each user at most twice a second (the punch alternates);
// records sharing a key would make the check weaker, and fail the test.
func zkIDs(t *testing.T, s *zksim.Sim, into map[string]string) {
	t.Helper()
	serial := s.Serial()
	recs := s.Records()
	n := len(into)
	for _, r := range recs {
		into[devices.EventID(zkteco.Type, serial, zkKey(r))] = serial
	}
	if len(into)-n != len(recs) {
		t.Fatalf("%d of the %d records of %s share a key: the test badges too fast", len(recs)-(len(into)-n), len(recs), serial)
	}
}

// zkUser is the n-th of the ZKTeco simulator's ten seeded users (1001…),
// round robin: a badge every 60 ms or slower is at most two per user and
// second, keys apart by their alternating punch.
func zkUser(n int) string { return strconv.Itoa(1001 + n%10) }

// zkKey mirrors the ZKTeco adapter's event key.
func zkKey(r zkproto.Attendance) string {
	return fmt.Sprintf("%s|%s|%d|%d", r.UserID, r.Time, r.Status, r.Punch)
}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, n
}

// hikSettings are a Hikvision device's adapter settings for a simulator
// (the simulator's zone is UTC+03:00).
func hikSettings(password string) map[string]any {
	return map[string]any{"username": "admin", "password": password, "timeout_ms": 3000, "stream_idle_seconds": 5, "doors": []int{1, 2}}
}

// zkSettings are a ZKTeco device's adapter settings for a simulator.
func zkSettings() map[string]any {
	return map[string]any{"timeout_ms": 3000, "idle_timeout_ms": 2000}
}

// localDevice is a device of gateway.yml (STAFF_GATEWAY_DEVICES).
func localDevice(t *testing.T, name, typ, addr string, settings any) devices.Config {
	t.Helper()
	host, port := splitHostPort(t, addr)
	raw, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	return devices.Config{Name: name, Type: typ, Host: host, Port: port, Settings: raw}
}

// startDevGateway runs an in-process gateway with the shipped adapters,
// gateway.yml's devices given as STAFF_GATEWAY_DEVICES, and short device
// timings. It returns the gateway's base URL.
func startDevGateway(t *testing.T, w *devWorld, local []devices.Config, extra map[string]string) string {
	t.Helper()
	env := map[string]string{
		"STAFF_GATEWAY_SERVER_URL":              w.api.URL,
		"STAFF_GATEWAY_ORGANIZATION_ID":         strconv.FormatInt(w.orgID, 10),
		"STAFF_GATEWAY_ORGANIZATION_API_KEY":    w.key,
		"STAFF_GATEWAY_GATEWAY_LISTEN":          "127.0.0.1:0",
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":     "off",
		"STAFF_GATEWAY_GATEWAY_SERIAL":          "GW-DEV",
		"STAFF_GATEWAY_BUFFER_PATH":             filepath.Join(t.TempDir(), "buffer.sqlite"),
		"STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL":   "100ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_INITIAL":  "20ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_MAX":      "200ms",
		"STAFF_GATEWAY_CONTROL_BACKOFF_INITIAL": "100ms",
		"STAFF_GATEWAY_CONTROL_BACKOFF_MAX":     "1s",
		"STAFF_GATEWAY_HEALTH_OPERATOR_TOKEN":   e2eOperatorToken,
		"STAFF_GATEWAY_DEVICE_CALL_TIMEOUT":     "3s",
		"STAFF_GATEWAY_DEVICE_CATCHUP_INTERVAL": "2s",
		"STAFF_GATEWAY_DEVICE_BACKOFF_INITIAL":  "100ms",
		"STAFF_GATEWAY_DEVICE_BACKOFF_MAX":      "1s",
		"STAFF_GATEWAY_DEVICE_COMMAND_TIMEOUT":  "5s",
	}
	if len(local) > 0 {
		raw, err := json.Marshal(local)
		if err != nil {
			t.Fatal(err)
		}
		env["STAFF_GATEWAY_DEVICES"] = string(raw)
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := logtest.New(t)
	g, err := gateway.New(context.Background(), cfg, gateway.Deps{Logger: log, Version: "e2e", DeviceFactories: vendors.Factories(log)})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := g.Stop(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	base := "http://" + g.Addr()
	waitUntil(t, "control channel up", 60*time.Second, func() bool {
		d, err := gcDetails(base)
		return err == nil && d.Control != nil && d.Control.Mode == "websocket"
	})
	return base
}

// deviceStates reads the devices' supervisor states from /health/details.
func deviceStates(base string) map[string]devices.Status {
	d, err := gcDetails(base)
	if err != nil {
		return nil
	}
	out := map[string]devices.Status{}
	for _, s := range d.Devices {
		out[s.Name] = s
	}
	return out
}

// waitOnline waits until every named device is online on the gateway.
func waitOnline(t *testing.T, base string, within time.Duration, names ...string) {
	t.Helper()
	waitUntil(t, "devices "+strings.Join(names, ", ")+" online", within, func() bool {
		st := deviceStates(base)
		for _, n := range names {
			if st[n].State != devices.StateOnline {
				return false
			}
		}
		return true
	})
}

// badger badges on simulators every period until stopped.
type badger struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	n    int
}

func startBadger(t *testing.T, period time.Duration, badge func(i int)) *badger {
	b := &badger{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		tk := time.NewTicker(period)
		defer tk.Stop()
		for i := 0; ; i++ {
			select {
			case <-b.stop:
				return
			case <-tk.C:
			}
			badge(i)
			b.mu.Lock()
			b.n++
			b.mu.Unlock()
		}
	}()
	t.Cleanup(b.halt)
	return b
}

func (b *badger) halt() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
}

func (b *badger) count() int { b.mu.Lock(); defer b.mu.Unlock(); return b.n }

// startHik starts a Hikvision simulator.
func startHik(t *testing.T, opts hiksim.Options) *hiksim.Sim {
	t.Helper()
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = time.Second
	}
	s := hiksim.New(opts)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// startZK starts a ZKTeco simulator.
func startZK(t *testing.T, opts zksim.Options) *zksim.Sim {
	t.Helper()
	s := zksim.New(opts)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestDeviceEventsReachTheCloudOncePerEvent: a Hikvision terminal
// configured from the cloud (devices row, devices_update) and a ZKTeco
// terminal of gateway.yml, both with a backlog of past events (people the
// organisation employs, people it does not, unknown cards), then live
// badges. The cloud ends with exactly the simulators' events — per event
// id computed from the simulators' own logs, each once — in Alpha only.
func TestDeviceEventsReachTheCloudOncePerEvent(t *testing.T) {
	t.Parallel()
	w := newDevWorld(t)
	const hikSerial = "DS-K1T671M-E2E-0001"
	hik := startHik(t, hiksim.Options{Serial: hikSerial, PastEvents: 45})
	hik.Badge("", "4000000001") // an unknown card, before the gateway
	zk := startZK(t, zksim.Options{Records: 60})
	zk.AddRecords(zkproto.Attendance{UID: 99, UserID: "9999", Time: zkproto.TimeOf(zk.Now().Add(-time.Hour)), Status: 2})

	hikID := w.addDevice(t, "hik-entrance", hikvision.Type, hik.Addr(), hikSettings("Admin12345"))
	base := startDevGateway(t, w, []devices.Config{localDevice(t, "zk-back", zkteco.Type, zk.Addr(), zkSettings())}, nil)
	w.sync(t)
	waitOnline(t, base, 60*time.Second, "hik-entrance", "zk-back")
	if st := deviceStates(base)["hik-entrance"]; st.ID != hikID || st.Serial != hikSerial {
		t.Fatalf("the cloud's device runs as %+v, want id %d serial %s", st, hikID, hikSerial)
	}

	// Live badges while the backlog may still be going up.
	b := startBadger(t, 60*time.Millisecond, func(i int) {
		switch i % 4 {
		case 0:
			hik.Badge("1001", "3308812528")
		case 1:
			hik.Badge("", strconv.Itoa(5000000000+i)) // unknown card
		case 2:
			_, _ = zk.Badge(zkUser(i / 2)) // 1001 and 1002 are employees of Alpha, the others not
		case 3:
			_, _ = zk.Badge(zkUser(i / 2))
		}
	})
	time.Sleep(3 * time.Second)
	b.halt()

	want := map[string]string{}
	hikIDs(hik, hikSerial, want)
	zkIDs(t, zk, want)
	waitUntil(t, "every simulator event in the cloud", 60*time.Second, func() bool { return w.hasAll(t, want) })
	time.Sleep(500 * time.Millisecond) // a duplicate would be in the same batches
	w.checkExactlyOnce(t, want)
	got := w.stored(t)
	emps := map[string]int{}
	for _, r := range got {
		emps[r.emp]++
	}
	if emps["1001"] == 0 || emps["1002"] == 0 || emps["9999"] != 1 || emps[""] == 0 {
		t.Errorf("employee numbers stored: %v, want 1001, 1002, 9999 once and card-only events", emps)
	}
	t.Logf("%d events (%d live badges) stored once each; employee numbers %v", len(want), b.count(), emps)
}

// TestDeviceReconnectCatchesUpWithoutGapOrDuplicate: badges go on at both
// terminals while each reboots — the Hikvision one by its reboot window,
// the ZKTeco one by a reboot command sent from the cloud — so events are
// recorded while the gateway is cut off, and some live events are also
// read again by the catch-up after the reconnect. The cloud ends with every
// event exactly once.
func TestDeviceReconnectCatchesUpWithoutGapOrDuplicate(t *testing.T) {
	t.Parallel()
	w := newDevWorld(t)
	const hikSerial = "DS-K1T671M-E2E-0002"
	hik := startHik(t, hiksim.Options{Serial: hikSerial, PastEvents: 10, RebootDuration: 2 * time.Second})
	zk := startZK(t, zksim.Options{Records: 10, RebootWindow: 2 * time.Second})
	w.addDevice(t, "hik", hikvision.Type, hik.Addr(), hikSettings("Admin12345"))
	zkID := w.addDevice(t, "zk", zkteco.Type, zk.Addr(), zkSettings())
	// With 100 ms–1 s reconnect delays a 2 s reboot window is many failed
	// attempts; the circuit breaker (5 by default, documented) would
	// isolate the devices for minutes, which is not what this test is about.
	base := startDevGateway(t, w, nil, map[string]string{"STAFF_GATEWAY_DEVICE_ISOLATE_AFTER_FAILURES": "100"})
	w.sync(t)
	waitOnline(t, base, 60*time.Second, "hik", "zk")

	b := startBadger(t, 40*time.Millisecond, func(i int) {
		if i%2 == 0 {
			hik.Badge("100"+strconv.Itoa(1+i%3), "")
		} else {
			_, _ = zk.Badge(zkUser(i / 2))
		}
	})
	time.Sleep(time.Second)
	before := deviceStates(base)
	hik.Reboot()
	c := w.send(t, devicecmd.Request{DeviceID: zkID, Command: devices.CmdReboot})
	if c = w.waitCommand(t, c.ID, 60*time.Second); c.Status != devicecmd.StatusCompleted {
		t.Fatalf("reboot command %s: %s (%v)", c.ID, c.Status, c.Error)
	}
	waitUntil(t, "the terminals went down", 30*time.Second, func() bool { return hik.Reboots() == 1 && zk.Restarts() == 1 })
	// Both back: each supervisor reconnected after its device's window.
	time.Sleep(2 * time.Second)
	waitUntil(t, "both reconnected", 60*time.Second, func() bool {
		st := deviceStates(base)
		return st["hik"].State == devices.StateOnline && st["zk"].State == devices.StateOnline &&
			st["hik"].Counts.Connects >= 2 && st["zk"].Counts.Connects >= 2
	})
	time.Sleep(time.Second) // live badges after the reconnect
	b.halt()
	// The badges of the reboot windows came by the catch-up after the
	// reconnect (the gap path), not only live.
	after := deviceStates(base)
	for _, n := range []string{"hik", "zk"} {
		if after[n].Counts.CatchupEvents <= before[n].Counts.CatchupEvents {
			t.Errorf("%s: no catch-up events after the reconnect (%d before, %d after)", n, before[n].Counts.CatchupEvents, after[n].Counts.CatchupEvents)
		}
	}

	want := map[string]string{}
	hikIDs(hik, hikSerial, want)
	zkIDs(t, zk, want)
	waitUntil(t, "every simulator event in the cloud", 60*time.Second, func() bool { return w.hasAll(t, want) })
	time.Sleep(500 * time.Millisecond)
	w.checkExactlyOnce(t, want)
	t.Logf("%d events (%d badges across the reboots) stored once each", len(want), b.count())
}

// TestDeviceOpenDoorRoundTrip: open_door sent from the cloud travels the
// command queue and the control channel to the gateway and its terminal
// (the Hikvision door opens, the ZKTeco terminal gets one CMD_UNLOCK), and
// the device_commands row completes with the device's answer. A command to
// a terminal that is switched off ends failed (or expired) with a clear
// error, within its short expiry.
func TestDeviceOpenDoorRoundTrip(t *testing.T) {
	t.Parallel()
	w := newDevWorld(t)
	const hikSerial = "DS-K1T671M-E2E-0003"
	hik := startHik(t, hiksim.Options{Serial: hikSerial})
	zk := startZK(t, zksim.Options{Records: 5})
	hikID := w.addDevice(t, "hik", hikvision.Type, hik.Addr(), hikSettings("Admin12345"))
	zkID := w.addDevice(t, "zk", zkteco.Type, zk.Addr(), zkSettings())
	// A long device.command_timeout: the command's own expiry must end it.
	base := startDevGateway(t, w, nil, map[string]string{"STAFF_GATEWAY_DEVICE_COMMAND_TIMEOUT": "25s",
		"STAFF_GATEWAY_DEVICE_ISOLATE_AFTER_FAILURES": "100"})
	w.sync(t)
	waitOnline(t, base, 60*time.Second, "hik", "zk")

	if d := hik.Door(2); d != hiksim.DoorClosed {
		t.Fatalf("door 2 is %q before the command", d)
	}
	c := w.send(t, devicecmd.Request{DeviceID: hikID, Command: devices.CmdOpenDoor, Door: 2})
	c = w.waitCommand(t, c.ID, 60*time.Second)
	var res protocol.DeviceCommandResult
	if c.Status != devicecmd.StatusCompleted || json.Unmarshal(c.Response, &res) != nil || res.Status != protocol.DeviceCommandOK || res.DeviceSerial != hikSerial {
		t.Fatalf("open_door on the Hikvision terminal: %s, response %s, error %v", c.Status, c.Response, c.Error)
	}
	if d := hik.Door(2); d != hiksim.DoorOpen {
		t.Errorf("door 2 is %q after open_door, want %q", d, hiksim.DoorOpen)
	}
	if d := hik.Door(1); d != hiksim.DoorClosed {
		t.Errorf("door 1 is %q, want it untouched", d)
	}
	if c.CompletedAt == nil || c.DeliveredAt == nil {
		t.Errorf("completed command without delivered_at/completed_at: %+v", c)
	}

	before := len(zk.Unlocks())
	c = w.send(t, devicecmd.Request{DeviceID: zkID, Command: devices.CmdOpenDoor})
	c = w.waitCommand(t, c.ID, 60*time.Second)
	res = protocol.DeviceCommandResult{}
	if c.Status != devicecmd.StatusCompleted || json.Unmarshal(c.Response, &res) != nil || res.Status != protocol.DeviceCommandOK || res.DeviceSerial != zk.Serial() {
		t.Fatalf("open_door on the ZKTeco terminal: %s, response %s, error %v", c.Status, c.Response, c.Error)
	}
	if u := zk.Unlocks(); len(u) != before+1 || u[len(u)-1].Value != 30 {
		t.Errorf("unlocks after open_door: %+v (before %d), want one of 3 s (30 tenths)", u, before)
	}

	// The ZKTeco terminal is switched off: a command with a short expiry
	// cannot run and ends with a clear error, not pending forever; and when
	// the terminal comes back after that expiry (but well within
	// device.command_timeout) the door stays shut: a door opened late is
	// worse than not at all.
	addr := zk.Addr()
	_ = zk.Close()
	waitUntil(t, "the gateway sees the terminal gone", 30*time.Second, func() bool { return deviceStates(base)["zk"].State != devices.StateOnline })
	sent := time.Now()
	c = w.send(t, devicecmd.Request{DeviceID: zkID, Command: devices.CmdOpenDoor, TTL: 3 * time.Second})
	for time.Since(sent) < 4*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	zk2 := startZK(t, zksim.Options{Addr: addr, Records: -1})
	c = w.waitCommand(t, c.ID, 60*time.Second)
	if c.Status != devicecmd.StatusFailed && c.Status != devicecmd.StatusExpired {
		t.Fatalf("open_door on a switched-off terminal: %s (response %s), want failed or expired", c.Status, c.Response)
	}
	if c.Error == nil || *c.Error == "" {
		t.Fatalf("open_door on a switched-off terminal ended %s without an error", c.Status)
	}
	if !strings.Contains(*c.Error, "offline") && !strings.Contains(*c.Error, "expire") {
		t.Errorf("error %q names neither the offline device nor the expiry", *c.Error)
	}
	if took := time.Since(sent); took > 15*time.Second {
		t.Errorf("the offline command took %v to end, past its 3 s expiry", took)
	}
	waitOnline(t, base, 30*time.Second, "zk")
	time.Sleep(time.Second) // a late unlock would come as soon as the session is up
	if u := zk2.Unlocks(); len(u) != 0 {
		t.Errorf("the terminal back after the command's expiry was unlocked: %+v", u)
	}
	t.Logf("offline command: %s, %q after %v", c.Status, *c.Error, time.Since(sent).Round(100*time.Millisecond))
}

// TestDeviceFailureIsolation: five terminals on one gateway, two of them
// bad — a Hikvision terminal that accepts connections and never answers,
// and one whose password the gateway has wrong. The three good ones (both
// vendors) keep delivering: every live badge reaches the cloud, once,
// within a generous bound. The refused password is tried exactly once
// (one failed login on the device, no retry loop that would lock the
// account), and that device is reported auth_failed.
func TestDeviceFailureIsolation(t *testing.T) {
	t.Parallel()
	w := newDevWorld(t)
	hang := startHik(t, hiksim.Options{Serial: "HIK-HANG"})
	hang.SetFault(hiksim.FaultHang, true)
	locked := startHik(t, hiksim.Options{Serial: "HIK-LOCKED", Password: "Right-Pass-1"})
	const goodSerial = "HIK-GOOD"
	good := startHik(t, hiksim.Options{Serial: goodSerial, PastEvents: 5})
	zkA := startZK(t, zksim.Options{Records: 5})
	zkB := startZK(t, zksim.Options{Records: 5, CommKey: 4242})
	zkBSettings := zkSettings()
	zkBSettings["comm_key"] = 4242
	local := []devices.Config{
		localDevice(t, "hang", hikvision.Type, hang.Addr(), hikSettings("Admin12345")),
		localDevice(t, "locked", hikvision.Type, locked.Addr(), hikSettings("Wrong-Pass-9")),
		localDevice(t, "good", hikvision.Type, good.Addr(), hikSettings("Admin12345")),
		localDevice(t, "zk-a", zkteco.Type, zkA.Addr(), zkSettings()),
		localDevice(t, "zk-b", zkteco.Type, zkB.Addr(), zkBSettings),
	}
	base := startDevGateway(t, w, local, nil)
	waitOnline(t, base, 60*time.Second, "good", "zk-a", "zk-b")
	waitUntil(t, "the wrong password reported", 30*time.Second, func() bool {
		return deviceStates(base)["locked"].State == devices.StateAuthFailed
	})

	b := startBadger(t, 50*time.Millisecond, func(i int) {
		switch i % 3 {
		case 0:
			good.Badge("100"+strconv.Itoa(1+i%3), "")
		case 1:
			_, _ = zkA.Badge(zkUser(i / 3))
		case 2:
			_, _ = zkB.Badge(zkUser(i / 3))
		}
	})
	time.Sleep(4 * time.Second)
	b.halt()
	stopped := time.Now()
	want := map[string]string{}
	hikIDs(good, goodSerial, want)
	zkIDs(t, zkA, want)
	zkIDs(t, zkB, want)
	// Generous: on a loaded machine the uplink flushes every 100 ms; the
	// hanging terminal must not hold anything up.
	waitUntil(t, "the good terminals' events in the cloud", 30*time.Second, func() bool { return w.hasAll(t, want) })
	lag := time.Since(stopped)
	time.Sleep(500 * time.Millisecond)
	w.checkExactlyOnce(t, want)

	st := deviceStates(base)
	if s := st["locked"]; s.State != devices.StateAuthFailed || s.LastErrorClass != "auth" {
		t.Errorf("the device with the wrong password: %+v, want auth_failed", s)
	}
	if n := locked.FailedLogins(); n != 1 || locked.Locked() {
		t.Errorf("the device with the wrong password saw %d failed logins (locked %v), want exactly 1: no retry loop", n, locked.Locked())
	}
	if s := st["hang"]; s.State == devices.StateOnline || s.ConsecutiveFailures == 0 {
		t.Errorf("the hanging device: %+v, want it failing and not online", s)
	}
	// The good ones are still online (a reconnect of theirs would not lose
	// events, as checked above, so it is only logged).
	waitOnline(t, base, 30*time.Second, "good", "zk-a", "zk-b")
	for _, n := range []string{"good", "zk-a", "zk-b"} {
		if r := st[n].Counts.Reconnects; r != 0 {
			t.Logf("good device %s reconnected %d times (a loaded machine?)", n, r)
		}
	}
	t.Logf("%d events of the good terminals stored once, %v after the last badge; hanging: %s (%d failures); locked: %d failed login",
		len(want), lag.Round(10*time.Millisecond), st["hang"].State, st["hang"].ConsecutiveFailures, locked.FailedLogins())
}

// TestGatewayProcessKilledWhileDeviceEventsFlow: a real gateway process
// (cmd/gateway) drives a ZKTeco terminal of its gateway.yml while badges
// flow; it is SIGKILLed mid-stream (events buffered but not uploaded,
// cursors possibly behind what was buffered), badges go on while it is
// down, and it is started again on the same buffer. Every event the
// terminal recorded reaches the cloud exactly once.
func TestGatewayProcessKilledWhileDeviceEventsFlow(t *testing.T) {
	t.Parallel()
	bin := gcGatewayBinary(t)
	w := newDevWorld(t)
	zk := startZK(t, zksim.Options{Records: 30})
	host, port := splitHostPort(t, zk.Addr())
	dir := t.TempDir()
	gwPort := gcFreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	cfgPath := filepath.Join(dir, "gateway.yml")
	cfg := fmt.Sprintf(`server:
  url: %s
  timeout: 10s
organization:
  id: %d
  api_key: %s
gateway:
  serial: GW-DEV
  listen: 127.0.0.1:%d
  grpc_listen: "off"
buffer:
  path: %s
uplink:
  flush_interval: 100ms
  backoff_initial: 50ms
  backoff_max: 500ms
control:
  backoff_initial: 100ms
  backoff_max: 1s
health:
  operator_token: %s
device:
  call_timeout: 3s
  catchup_interval: 1s
  backoff_initial: 100ms
  backoff_max: 1s
logging:
  level: info
devices:
  - name: zk-gate
    adapter_type: zkteco
    host: %s
    port: %d
    config:
      timeout_ms: 3000
      idle_timeout_ms: 2000
`, w.api.URL, w.orgID, w.key, gwPort, filepath.Join(dir, "buffer.sqlite"), e2eOperatorToken, host, port)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startGCProcess(t, bin, cfgPath, base)
	defer func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", p.log())
		}
	}()
	waitOnline(t, base, 60*time.Second, "zk-gate")
	b := startBadger(t, 60*time.Millisecond, func(i int) { _, _ = zk.Badge(zkUser(i)) })
	time.Sleep(1500 * time.Millisecond)
	p.kill(t)
	killedAt := b.count()
	time.Sleep(time.Second) // badges while the gateway is down
	p = startGCProcess(t, bin, cfgPath, base)
	waitOnline(t, base, 60*time.Second, "zk-gate")
	time.Sleep(1500 * time.Millisecond)
	b.halt()

	want := map[string]string{}
	zkIDs(t, zk, want)
	waitUntil(t, "every terminal event in the cloud after the restart", 60*time.Second, func() bool { return w.hasAll(t, want) })
	time.Sleep(500 * time.Millisecond)
	w.checkExactlyOnce(t, want)
	t.Logf("%d events (%d badges, %d before the SIGKILL) stored once each", len(want), b.count(), killedAt)
}
