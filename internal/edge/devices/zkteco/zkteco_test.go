package zkteco

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/sim/zksim"
	"github.com/staffcontrol/staffcontrol/internal/zkproto"
)

func startSim(t *testing.T, opts zksim.Options) *zksim.Sim {
	t.Helper()
	s := zksim.New(opts)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newAdapter(t *testing.T, sim *zksim.Sim, settings map[string]any) *Adapter {
	t.Helper()
	host, port, _ := net.SplitHostPort(sim.Addr())
	p, _ := strconv.Atoi(port)
	raw, _ := json.Marshal(settings)
	f := Factory(nil)
	ad, err := f.New(devices.Config{Name: "zk1", Type: Type, Host: host, Port: p, Settings: raw})
	if err != nil {
		t.Fatal(err)
	}
	a := ad.(*Adapter)
	t.Cleanup(func() { a.Close() })
	return a
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestConnectInfoUsers(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			sim := startSim(t, zksim.Options{UDP: true, CommKey: 123456, Users: 70, Records: 5})
			a := newAdapter(t, sim, map[string]any{"comm_key": 123456, "transport": transport})
			ctx := ctxT(t, 20*time.Second)
			if err := a.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			info, err := a.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.Serial != sim.Serial() || info.Firmware != "Ver 6.60 Jun 16 2015" || info.Model != "F19" ||
				info.Extra["platform"] != "ZEM760_TFT" || info.Extra["users"] != "70" || info.Extra["records"] != "5" || info.MAC == "" {
				t.Errorf("info %+v", info)
			}
			users, err := a.Users(ctx) // 70×72+4 bytes: the chunked flow
			if err != nil {
				t.Fatal(err)
			}
			want := sim.Users()
			if len(users) != len(want) {
				t.Fatalf("%d users, want %d", len(users), len(want))
			}
			for i := range want {
				if users[i] != want[i] {
					t.Errorf("user %d: %+v, want %+v", i, users[i], want[i])
				}
			}
			if sim.Requests(zkproto.CmdDataRdy) == 0 {
				t.Error("users were not read in chunks")
			}
			res, err := a.Execute(ctx, devices.Command{Type: devices.CmdGetInfo})
			if err != nil || len(res.Data) == 0 {
				t.Errorf("get_info %+v %v", res, err)
			}
			if err := a.Close(); err != nil {
				t.Error(err)
			}
			if sim.Requests(zkproto.CmdExit) != 1 {
				t.Error("no CMD_EXIT on Close")
			}
			if _, err := a.Info(ctx); !errors.Is(err, ErrNotConnected) {
				t.Errorf("Info after Close: %v", err)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	for _, tc := range []struct {
		name     string
		simKey   uint32
		key      int
		fault    zksim.Fault
		wantAuth bool
	}{
		{"no key needed", 0, 0, zksim.FaultNone, false},
		{"right key", 999999, 999999, zksim.FaultNone, false},
		{"wrong key", 1234, 1235, zksim.FaultNone, true},
		{"key missing", 1234, 0, zksim.FaultNone, true},
		{"device refuses", 1234, 1234, zksim.FaultUnauth, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := startSim(t, zksim.Options{CommKey: tc.simKey})
			sim.SetFault(tc.fault)
			a := newAdapter(t, sim, map[string]any{"comm_key": tc.key})
			err := a.Connect(ctxT(t, 10*time.Second))
			var ae *devices.AuthError
			if got := errors.As(err, &ae); got != tc.wantAuth {
				t.Fatalf("Connect: %v (auth error %v, want %v)", err, got, tc.wantAuth)
			}
			if !tc.wantAuth && err != nil {
				t.Fatal(err)
			}
		})
	}
}

// fetchAll runs Fetch and returns the events and the last cursor.
func fetchAll(t *testing.T, a *Adapter, since devices.Cursor) ([]devices.Event, devices.Cursor, int) {
	t.Helper()
	var evs []devices.Event
	pages := 0
	cur := since
	err := a.Fetch(ctxT(t, 30*time.Second), since, func(p []devices.Event, c devices.Cursor) error {
		if len(p) == 0 {
			t.Error("empty page")
		}
		evs = append(evs, p...)
		cur = c
		pages++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs, cur, pages
}

func TestFetchCursor(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			zone := time.FixedZone("UTC+3", 3*3600)
			sim := startSim(t, zksim.Options{UDP: true, Users: 40, Records: 2500, Location: zone}) // 100,004 bytes: 2 TCP chunks, 7 UDP chunks
			a := newAdapter(t, sim, map[string]any{"transport": transport, "page_size": 700, "time_zone": "Etc/GMT-3"})
			if err := a.Connect(ctxT(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			evs, cur, pages := fetchAll(t, a, "")
			recs := sim.Records()
			if len(evs) != len(recs) || pages != 4 {
				t.Fatalf("%d events in %d pages, want %d in 4", len(evs), pages, len(recs))
			}
			users := map[string]zkproto.User{}
			for _, u := range sim.Users() {
				users[u.UserID] = u
			}
			for i, r := range recs {
				e := evs[i]
				y, mo, d, h, mi, s := r.Time.Fields()
				wantT := time.Date(y, mo, d, h, mi, s, 0, zone).UTC()
				if e.EmployeeNumber != r.UserID || !e.Time.Equal(wantT) || e.Time.Location() != time.UTC ||
					e.Key != fmt.Sprintf("%s|%s|%d|%d", r.UserID, r.Time, r.Status, r.Punch) ||
					e.CardNumber != strconv.Itoa(int(users[r.UserID].Card)) || e.MajorCode != 5 || e.MinorCode != int(r.Punch) {
					t.Fatalf("event %d: %+v for record %+v", i, e, r)
				}
			}
			// Nothing new: nothing handed over, the cursor stays.
			if more, _, _ := fetchAll(t, a, cur); len(more) != 0 {
				t.Fatalf("%d events after the cursor with nothing new", len(more))
			}
			// A record in the same second as the last one handed over, and
			// a live badge: both new, once.
			last := recs[len(recs)-1]
			other := sim.Users()[5]
			if other.UserID == last.UserID {
				other = sim.Users()[6]
			}
			sim.AddRecords(zkproto.Attendance{UID: other.UID, UserID: other.UserID, Time: last.Time, Status: 2})
			badge, err := sim.Badge(sim.Users()[1].UserID)
			if err != nil {
				t.Fatal(err)
			}
			more, cur2, _ := fetchAll(t, a, cur)
			if len(more) != 2 || more[0].EmployeeNumber != other.UserID || more[1].EmployeeNumber != badge.UserID {
				t.Fatalf("after appending: %+v", more)
			}
			if again, _, _ := fetchAll(t, a, cur2); len(again) != 0 {
				t.Fatalf("repeated: %+v", again)
			}
			// Resuming from a page's cursor mid-way: no gap, no duplicate.
			var firstPageCur devices.Cursor
			stop := errors.New("stop")
			err = a.Fetch(ctxT(t, 30*time.Second), "", func(p []devices.Event, c devices.Cursor) error {
				firstPageCur = c
				return stop
			})
			if !errors.Is(err, stop) {
				t.Fatalf("Fetch did not return the page's error: %v", err)
			}
			rest, _, _ := fetchAll(t, a, firstPageCur)
			if got, want := 700+len(rest), len(sim.Records()); got != want {
				t.Fatalf("first page + rest = %d, want %d", got, want)
			}
			keys := map[string]bool{}
			for _, e := range append(evs[:700:700], rest...) {
				if keys[e.Key] {
					t.Fatalf("duplicate key %s", e.Key)
				}
				keys[e.Key] = true
			}
		})
	}
}

// TestFetchSameSecondAcrossPages: many records in one second split by
// pages; resuming from each page's cursor neither skips nor repeats.
func TestFetchSameSecondAcrossPages(t *testing.T) {
	at := zkproto.TimeOf(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	var recs []zkproto.Attendance
	var users []zkproto.User
	for i := 0; i < 9; i++ {
		u := zkproto.User{UID: uint16(i + 1), UserID: strconv.Itoa(i + 1)}
		users = append(users, u)
		recs = append(recs, zkproto.Attendance{UID: u.UID, UserID: u.UserID, Time: at, Status: 1})
	}
	sim := startSim(t, zksim.Options{SeedUsers: users, SeedRecords: recs})
	a := newAdapter(t, sim, map[string]any{"page_size": 2})
	if err := a.Connect(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	var got []string
	cur := devices.Cursor("")
	for i := 0; i < 20; i++ {
		var page []devices.Event
		stop := errors.New("one page")
		err := a.Fetch(ctxT(t, 10*time.Second), cur, func(p []devices.Event, c devices.Cursor) error {
			page, cur = p, c
			return stop
		})
		if err == nil {
			break
		}
		if !errors.Is(err, stop) {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, e.EmployeeNumber)
		}
	}
	if fmt.Sprint(got) != "[1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("got %v", got)
	}
}

func TestSubscribe(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) { testSubscribe(t, transport) })
	}
}

func testSubscribe(t *testing.T, transport string) {
	sim := startSim(t, zksim.Options{UDP: true, CommKey: 7, Users: 5, Records: 3})
	a := newAdapter(t, sim, map[string]any{"comm_key": 7, "idle_timeout_ms": 200, "timeout_ms": 1000, "transport": transport})
	if err := a.Connect(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	fetchAll(t, a, "") // learns the users: live events carry card numbers
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan devices.Event, 10)
	done := make(chan error, 1)
	go func() { done <- a.Subscribe(ctx, func(e devices.Event) { events <- e }) }()
	waitFor(t, func() bool { return sim.Listeners() > 0 })
	var want []zkproto.Attendance
	for _, u := range sim.Users()[1:4] {
		r, err := sim.Badge(u.UserID)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
		time.Sleep(5 * time.Millisecond)
	}
	live := map[string]devices.Event{}
	for range want {
		select {
		case e := <-events:
			live[e.Key] = e
		case err := <-done:
			t.Fatalf("Subscribe ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no live event")
		}
	}
	// The catch-up read gives the same keys and times: one event each.
	evs, _, _ := fetchAll(t, a, "")
	for _, e := range evs[len(evs)-3:] {
		l, ok := live[e.Key]
		if !ok || !l.Time.Equal(e.Time) || l.EmployeeNumber != e.EmployeeNumber || l.Direction != e.Direction ||
			l.CardNumber == "" || l.CardNumber != e.CardNumber || l.VerifyMode != "card" {
			t.Errorf("fetched %+v, live %+v", e, l)
		}
	}
	// Idle probes keep a healthy session alive.
	time.Sleep(700 * time.Millisecond)
	if sim.Requests(zkproto.CmdGetTime) == 0 {
		t.Error("no liveness probe during silence")
	}
	select {
	case err := <-done:
		t.Fatalf("Subscribe ended on a healthy session: %v", err)
	default:
	}
	// A hung device: the probe fails within idle + timeout.
	sim.SetFault(zksim.FaultHang)
	start := time.Now()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("nil error from a dead session")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("dead session noticed after %s", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("dead session not noticed")
	}
	sim.SetFault(zksim.FaultNone)
	// Cancellation ends a healthy subscription with the context's error.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { done <- a.Subscribe(ctx2, func(devices.Event) {}) }()
	waitFor(t, func() bool { return sim.Requests(zkproto.CmdRegEvent) > 1 })
	cancel2()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe ignored cancellation")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 10 s")
}

func TestCommands(t *testing.T) {
	zone := time.FixedZone("UTC+3", 3*3600)
	sim := startSim(t, zksim.Options{Location: zone, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }, RebootWindow: 500 * time.Millisecond})
	a := newAdapter(t, sim, map[string]any{"time_zone": "Etc/GMT-3", "timeout_ms": 1000})
	ctx := ctxT(t, 20*time.Second)
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Execute(ctx, devices.Command{Type: devices.CmdOpenDoor}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Execute(ctx, devices.Command{Type: devices.CmdOpenDoor, Params: json.RawMessage(`{"seconds":5}`)}); err != nil {
		t.Fatal(err)
	}
	if u := sim.Unlocks(); len(u) != 2 || u[0].Value != 30 || u[1].Value != 50 {
		t.Errorf("unlocks %+v", u)
	}
	if _, err := a.Execute(ctx, devices.Command{Type: devices.CmdSyncTime}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(sim.Now()); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("device clock off by %s after sync_time", d)
	}
	if sim.Requests(zkproto.CmdRefreshData) != 1 {
		t.Error("no CMD_REFRESHDATA after CMD_SET_TIME")
	}
	for _, c := range []string{devices.CmdCloseDoor, devices.CmdDoorAlwaysOpen, "bogus"} {
		if _, err := a.Execute(ctx, devices.Command{Type: c}); !errors.Is(err, devices.ErrUnsupported) {
			t.Errorf("%s: %v", c, err)
		}
	}
	if _, err := a.Execute(ctx, devices.Command{Type: devices.CmdReboot}); err != nil {
		t.Fatal(err)
	}
	if sim.Restarts() != 1 {
		t.Errorf("restarts %d", sim.Restarts())
	}
	if _, err := a.Info(ctx); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Info after reboot: %v", err)
	}
	if err := a.Connect(ctx); err == nil {
		t.Error("connected during the reboot window")
	}
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = a.Connect(ctx); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no reconnect after the reboot window: %v", err)
	}
	if _, err := a.Info(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    zksim.Fault
		op       string // info or fetch
		timeout  int
		protocol bool // want a *devices.ProtocolError
		ok       bool // the operation succeeds despite the fault
	}{
		{"hang", zksim.FaultHang, "info", 300, false, false},
		{"bad checksum", zksim.FaultBadChecksum, "info", 2000, true, false},
		{"oversize", zksim.FaultOversize, "info", 2000, true, false},
		{"truncated", zksim.FaultTruncate, "info", 2000, true, false},
		{"drop mid-transfer", zksim.FaultDropMidTransfer, "fetch", 2000, false, false},
		{"slow writes", zksim.FaultSlowWrite, "info", 10000, false, true},
		{"hang during fetch", zksim.FaultHang, "fetch", 300, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := startSim(t, zksim.Options{Records: 2000, SlowWriteDelay: time.Millisecond})
			a := newAdapter(t, sim, map[string]any{"timeout_ms": tc.timeout})
			ctx := ctxT(t, 30*time.Second)
			if err := a.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			sim.SetFault(tc.fault)
			start := time.Now()
			var err error
			if tc.op == "info" {
				_, err = a.Info(ctx)
			} else {
				err = a.Fetch(ctx, "", func([]devices.Event, devices.Cursor) error { return nil })
			}
			elapsed := time.Since(start)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			var pe *devices.ProtocolError
			if errors.As(err, &pe) != tc.protocol {
				t.Errorf("error %v: protocol error %v, want %v", err, errors.As(err, &pe), tc.protocol)
			}
			if tc.fault == zksim.FaultBadChecksum && a.BadChecksums() == 0 {
				t.Error("bad checksum not counted")
			}
			// The per-request timeout bounds it (generous for a loaded machine).
			if limit := time.Duration(tc.timeout)*time.Millisecond + 3*time.Second; elapsed > limit {
				t.Errorf("took %s, limit %s", elapsed, limit)
			}
			if _, err := a.Info(ctx); !errors.Is(err, ErrNotConnected) {
				t.Errorf("session kept after a broken exchange: %v", err)
			}
			sim.SetFault(zksim.FaultNone)
			if err := a.Connect(ctx); err != nil {
				t.Fatalf("reconnect: %v", err)
			}
		})
	}
}

func TestContextCancel(t *testing.T) {
	sim := startSim(t, zksim.Options{})
	a := newAdapter(t, sim, map[string]any{"timeout_ms": 60000})
	if err := a.Connect(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	sim.SetFault(zksim.FaultHang)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a.Info(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %s", d)
	}
	// A hung accept: Connect is bounded too.
	b := newAdapter(t, sim, map[string]any{"timeout_ms": 300})
	if err := b.Connect(ctxT(t, 10*time.Second)); err == nil {
		t.Error("connected to a hung device")
	}
}

func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		raw string
		ok  bool
	}{
		{``, true},
		{`{}`, true},
		{`{"comm_key": 999999, "transport": "udp", "time_zone": "Europe/Berlin", "timeout_ms": 1000, "unlock_seconds": 5, "unlock_units_per_second": 1}`, true},
		{`{"comm_key": 1000000}`, false},
		{`{"transport": "serial"}`, false},
		{`{"time_zone": "Mars/Olympus"}`, false},
		{`{"timeout_ms": 5}`, false},
		{`{"unknown": 1}`, false},
		{`[]`, false},
	} {
		_, _, err := ParseSettings(json.RawMessage(tc.raw))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.raw, err)
		}
	}
	f := Factory(nil)
	var schema map[string]any
	if err := json.Unmarshal(f.Schema, &schema); err != nil || f.Type != "zkteco" || f.Vendor != "ZKTeco" {
		t.Errorf("factory %+v: %v", f, err)
	}
	if _, err := f.New(devices.Config{Host: "", Settings: nil}); err == nil {
		t.Error("no host accepted")
	}
}
