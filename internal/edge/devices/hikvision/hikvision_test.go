package hikvision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/isapi"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/hiksim"
)

// start runs a simulator and builds an adapter for it with settings
// (username and password default to the simulator's).
func start(t *testing.T, opts hiksim.Options, settings map[string]any) (*hiksim.Sim, *Adapter) {
	t.Helper()
	opts.Logger = logtest.New(t)
	sim := hiksim.New(opts)
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim, adapterFor(t, sim, settings)
}

func adapterFor(t *testing.T, sim *hiksim.Sim, settings map[string]any) *Adapter {
	t.Helper()
	s := map[string]any{"username": "admin", "password": "Admin12345"}
	for k, v := range settings {
		s[k] = v
	}
	raw, _ := json.Marshal(s)
	host, port, _ := net.SplitHostPort(sim.Addr())
	p, _ := strconv.Atoi(port)
	a, err := New(devices.Config{Name: "door-1", Type: Type, Host: host, Port: p, Settings: raw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestConnectAndInfo(t *testing.T) {
	for _, alg := range []string{isapi.AlgMD5, isapi.AlgSHA256} {
		t.Run(alg, func(t *testing.T) {
			sim, a := start(t, hiksim.Options{Algorithm: alg, Serial: "DS-K1T671M-SERIAL-1", Model: "DS-K1T671M", Firmware: "V3.2.0"}, nil)
			ctx := ctxT(t, 20*time.Second)
			if err := a.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			info, err := a.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.Serial != "DS-K1T671M-SERIAL-1" || info.Model != "DS-K1T671M" || info.Firmware != "V3.2.0" || info.MAC == "" {
				t.Fatalf("%+v", info)
			}
			if n := sim.FailedLogins(); n != 0 {
				t.Fatalf("%d failed logins", n)
			}
		})
	}
}

func TestWrongPasswordIsOneAttempt(t *testing.T) {
	sim, _ := start(t, hiksim.Options{}, nil)
	a := adapterFor(t, sim, map[string]any{"password": "wrong"})
	err := a.Connect(ctxT(t, 20*time.Second))
	var ae *devices.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("want AuthError, got %v", err)
	}
	if ae.RetryAfter != 0 || ae.AttemptsLeft != 4 {
		t.Fatalf("%+v", ae)
	}
	if n := sim.FailedLogins(); n != 1 {
		t.Fatalf("the device saw %d failed logins, want exactly 1", n)
	}
}

func TestLockoutRetryAfter(t *testing.T) {
	sim, good := start(t, hiksim.Options{MaxLoginFailures: 2, LockDuration: time.Minute}, nil)
	bad := adapterFor(t, sim, map[string]any{"password": "wrong"})
	ctx := ctxT(t, 30*time.Second)
	var ae *devices.AuthError
	if err := bad.Connect(ctx); !errors.As(err, &ae) || ae.AttemptsLeft != 1 || ae.RetryAfter != 0 {
		t.Fatalf("first: %v", err)
	}
	if err := bad.Connect(ctx); !errors.As(err, &ae) || ae.RetryAfter < 55*time.Second || ae.RetryAfter > time.Minute || ae.AttemptsLeft != 0 {
		t.Fatalf("second: %v %+v", err, ae)
	}
	if !sim.Locked() {
		t.Fatal("not locked")
	}
	// While locked, even the right password is refused, with the countdown.
	err := good.Connect(ctx)
	if !errors.As(err, &ae) || ae.RetryAfter <= 0 {
		t.Fatalf("locked: %v", err)
	}
	first := ae.RetryAfter
	time.Sleep(1100 * time.Millisecond)
	if err := good.Connect(ctx); !errors.As(err, &ae) || ae.RetryAfter >= first {
		t.Fatalf("no countdown: %v then %v", first, ae.RetryAfter)
	}
	if n := sim.FailedLogins(); n != 2 {
		t.Fatalf("%d failed logins, want 2 (refusals while locked do not count)", n)
	}
}

func TestStaleNonceIsNotAFailure(t *testing.T) {
	sim, a := start(t, hiksim.Options{NonceTTL: 200 * time.Millisecond}, nil)
	ctx := ctxT(t, 20*time.Second)
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	sim.ExpireNonces()
	if _, err := a.Info(ctx); err != nil {
		t.Fatalf("after ExpireNonces: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := a.Info(ctx); err != nil {
		t.Fatalf("after the TTL: %v", err)
	}
	if n := sim.FailedLogins(); n != 0 {
		t.Fatalf("%d failed logins", n)
	}
}

// On an established session a refusal may be the device's way of saying
// the cached nonce expired, so the client re-challenges once: a password
// changed on the device costs two failed logins, never more.
func TestUnauthorizedAfterSessionIsTwoAttempts(t *testing.T) {
	sim, a := start(t, hiksim.Options{}, nil)
	ctx := ctxT(t, 20*time.Second)
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	sim.SetFault(hiksim.FaultUnauthorized, true)
	var ae *devices.AuthError
	if _, err := a.Execute(ctx, devices.Command{Type: devices.CmdOpenDoor}); !errors.As(err, &ae) || ae.AttemptsLeft != 3 {
		t.Fatalf("want AuthError with 3 attempts left, got %v", err)
	}
	if n := sim.FailedLogins(); n != 2 {
		t.Fatalf("%d failed logins, want 2", n)
	}
	if sim.Door(1) != hiksim.DoorClosed {
		t.Fatal("the door moved")
	}
}

// A device that does not flag expired nonces as stale still keeps the
// session: the refused cached nonce is re-challenged, not reported.
func TestExpiredNonceWithoutStaleFlag(t *testing.T) {
	sim, a := start(t, hiksim.Options{NoStale: true}, nil)
	ctx := ctxT(t, 20*time.Second)
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	sim.ExpireNonces()
	if _, err := a.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sim.FailedLogins(); n != 0 {
		t.Fatalf("%d failed logins", n)
	}
}

func TestDoorCommands(t *testing.T) {
	sim, a := start(t, hiksim.Options{Doors: 2}, map[string]any{"doors": []int{1, 2}})
	ctx := ctxT(t, 20*time.Second)
	for _, tc := range []struct {
		cmd  string
		door int
		want string
	}{
		{devices.CmdOpenDoor, 0, hiksim.DoorOpen},
		{devices.CmdCloseDoor, 1, hiksim.DoorClosed},
		{devices.CmdDoorAlwaysOpen, 2, hiksim.DoorAlwaysOpen},
		{devices.CmdDoorAlwaysClosed, 2, hiksim.DoorAlwaysClose},
		{devices.CmdOpenDoor, 2, hiksim.DoorOpen},
	} {
		res, err := a.Execute(ctx, devices.Command{Type: tc.cmd, Door: tc.door})
		if err != nil {
			t.Fatalf("%s: %v", tc.cmd, err)
		}
		door := max(tc.door, 1)
		if got := sim.Door(door); got != tc.want || res.Message != "OK" {
			t.Fatalf("%s door %d: state %q, message %q", tc.cmd, door, got, res.Message)
		}
	}
	// The remote operations are in the device's log (major 3).
	n := 0
	for _, e := range sim.Events() {
		if e.Major == 3 {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("%d operation events", n)
	}
	if _, err := a.Execute(ctx, devices.Command{Type: devices.CmdOpenDoor, Door: 3}); !errors.Is(err, devices.ErrUnsupported) {
		t.Fatalf("unconfigured door: %v", err)
	}
	if _, err := a.Execute(ctx, devices.Command{Type: "launch"}); !errors.Is(err, devices.ErrUnsupported) {
		t.Fatalf("unknown command: %v", err)
	}
}

func TestDeviceRefusalNamesSubStatusCode(t *testing.T) {
	// Door 3 is configured at the gateway but the device has two doors.
	_, a := start(t, hiksim.Options{Doors: 2}, map[string]any{"doors": []int{1, 2, 3}})
	_, err := a.Execute(ctxT(t, 20*time.Second), devices.Command{Type: devices.CmdOpenDoor, Door: 3})
	var re *isapi.ResponseError
	if !errors.As(err, &re) || re.Status.SubStatusCode != isapi.SubStatusBadParameter || !strings.Contains(err.Error(), "badParameters") {
		t.Fatalf("%v", err)
	}
}

func TestRebootAndReconnect(t *testing.T) {
	sim, a := start(t, hiksim.Options{RebootDuration: time.Second}, map[string]any{"timeout_ms": 2000})
	ctx := ctxT(t, 30*time.Second)
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Execute(ctx, devices.Command{Type: devices.CmdReboot}); err != nil {
		t.Fatal(err)
	}
	// Down within the window: connections refused.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := a.Info(ctx); err != nil {
			var ae *devices.AuthError
			if errors.As(err, &ae) {
				t.Fatalf("reboot looked like an auth failure: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the device never went down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Then back, and the adapter reconnects.
	deadline = time.Now().Add(15 * time.Second)
	for {
		err := a.Connect(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sim.Reboots() != 1 || sim.FailedLogins() != 0 {
		t.Fatalf("reboots %d, failed logins %d", sim.Reboots(), sim.FailedLogins())
	}
}

func TestGetInfoAndSyncTime(t *testing.T) {
	sim, a := start(t, hiksim.Options{Serial: "SER-9"}, map[string]any{"time_zone": "Europe/Istanbul"})
	ctx := ctxT(t, 20*time.Second)
	res, err := a.Execute(ctx, devices.Command{Type: devices.CmdGetInfo})
	if err != nil {
		t.Fatal(err)
	}
	var info devices.Info
	if err := json.Unmarshal(res.Data, &info); err != nil || info.Serial != "SER-9" {
		t.Fatalf("%v %s", err, res.Data)
	}
	sim.SetClockSkew(-3 * time.Hour)
	if _, err := a.Execute(ctx, devices.Command{Type: devices.CmdSyncTime}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(sim.Clock()); d > 5*time.Second || d < -5*time.Second {
		t.Fatalf("device clock off by %s after sync", d)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	params, _ := json.Marshal(map[string]any{"time": at})
	if _, err := a.Execute(ctx, devices.Command{Type: devices.CmdSyncTime, Params: params}); err != nil {
		t.Fatal(err)
	}
	if d := sim.Clock().Sub(at); d > 5*time.Second || d < 0 {
		t.Fatalf("device clock %s, want %s", sim.Clock(), at)
	}
}

// fetchAll runs one Fetch and checks its pages: cursors increase and each
// is the highest serialNo delivered so far.
func fetchAll(t *testing.T, a *Adapter, since devices.Cursor, during func(page int)) ([]devices.Event, devices.Cursor, int) {
	t.Helper()
	var all []devices.Event
	cursor, pages := since, 0
	err := a.Fetch(ctxT(t, 20*time.Second), since, func(evs []devices.Event, c devices.Cursor) error {
		pages++
		if len(evs) == 0 || len(evs) > 30 {
			t.Fatalf("page of %d events", len(evs))
		}
		all = append(all, evs...)
		if c != devices.Cursor(evs[len(evs)-1].Key) {
			t.Fatalf("cursor %s, last key %s", c, evs[len(evs)-1].Key)
		}
		cursor = c
		if during != nil {
			during(pages)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all, cursor, pages
}

func TestFetchPagingNoGapNoDuplicate(t *testing.T) {
	for _, pageSize := range []int{30, 7} {
		t.Run(fmt.Sprint(pageSize), func(t *testing.T) {
			sim, a := start(t, hiksim.Options{PastEvents: 70, PageSize: pageSize}, nil)
			got, cursor, pages := fetchAll(t, a, "", func(page int) {
				if page == 1 {
					sim.Badge("1001", "") // arrives between pages of one search
				}
			})
			if len(got) != 70 || pages != (70+pageSize-1)/pageSize || cursor != "70" {
				t.Fatalf("%d events in %d pages, cursor %s", len(got), pages, cursor)
			}
			sim.Badge("1002", "3308812529")
			sim.Badge("1003", "")
			more, cursor2, _ := fetchAll(t, a, cursor, nil)
			got = append(got, more...)
			again, cursor3, pages3 := fetchAll(t, a, cursor2, nil)
			if len(again) != 0 || pages3 != 0 || cursor3 != cursor2 {
				t.Fatalf("a fetch at the end returned %d events", len(again))
			}
			// Every event of the device exactly once, in serial order.
			want := sim.Events()
			if len(got) != len(want) {
				t.Fatalf("%d events fetched, the device has %d", len(got), len(want))
			}
			for i, w := range want {
				if got[i].Key != strconv.FormatInt(w.SerialNo, 10) || got[i].EmployeeNumber != w.EmployeeNoString || got[i].CardNumber != w.CardNo {
					t.Fatalf("event %d: %+v, device %+v", i, got[i], w)
				}
				at, _ := time.Parse(isapi.TimeLayout, w.Time)
				if !got[i].Time.Equal(at) || got[i].Time.Location() != time.UTC {
					t.Fatalf("event %d: time %s, device %s", i, got[i].Time, w.Time)
				}
			}
			last := got[len(got)-1]
			if last.MajorCode != 5 || last.MinorCode != 75 || last.Door == nil || *last.Door != 1 || last.VerifyMode == "" {
				t.Fatalf("%+v", last)
			}
		})
	}
}

func TestFetchEmptyAndPageError(t *testing.T) {
	sim, a := start(t, hiksim.Options{}, nil)
	ctx := ctxT(t, 20*time.Second)
	calls := 0
	if err := a.Fetch(ctx, "", func([]devices.Event, devices.Cursor) error { calls++; return nil }); err != nil || calls != 0 {
		t.Fatalf("%v, %d calls", err, calls)
	}
	sim.Badge("1001", "")
	stop := errors.New("buffer full")
	if err := a.Fetch(ctx, "", func([]devices.Event, devices.Cursor) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("%v", err)
	}
	if err := a.Fetch(ctx, "not-a-serial", func([]devices.Event, devices.Cursor) error { return nil }); err == nil {
		t.Fatal("bad cursor accepted")
	}
}

// subscribe runs Subscribe in the background and returns its events and
// its result.
func subscribe(t *testing.T, a *Adapter) (context.CancelFunc, <-chan devices.Event, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	evs := make(chan devices.Event, 100)
	done := make(chan error, 1)
	go func() { done <- a.Subscribe(ctx, func(e devices.Event) { evs <- e }) }()
	return cancel, evs, done
}

func waitEvent(t *testing.T, evs <-chan devices.Event, done <-chan error) devices.Event {
	t.Helper()
	select {
	case e := <-evs:
		return e
	case err := <-done:
		t.Fatalf("Subscribe ended: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("no event")
	}
	return devices.Event{}
}

func waitDone(t *testing.T, done <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("Subscribe still running after %s", within)
	}
	return nil
}

func TestSubscribeLiveBadges(t *testing.T) {
	for _, xml := range []bool{false, true} {
		t.Run(fmt.Sprint("xml=", xml), func(t *testing.T) {
			sim, a := start(t, hiksim.Options{HeartbeatInterval: 100 * time.Millisecond, XMLAlerts: xml}, nil)
			cancel, evs, done := subscribe(t, a)
			// The stream is up once a heartbeat passed; badge until one arrives.
			var first devices.Event
			deadline := time.Now().Add(15 * time.Second)
			for first.Key == "" {
				sim.Badge("1001", "3308812528")
				select {
				case first = <-evs:
				case err := <-done:
					t.Fatalf("Subscribe ended: %v", err)
				case <-time.After(200 * time.Millisecond):
					if time.Now().After(deadline) {
						t.Fatal("no event")
					}
				}
			}
			if first.EmployeeNumber != "1001" || first.CardNumber != "3308812528" || first.MajorCode != 5 || first.MinorCode != 1 {
				t.Fatalf("%+v", first)
			}
			want := sim.Badge("1003", "")
			var e devices.Event
			for e.Key != strconv.FormatInt(want.SerialNo, 10) {
				e = waitEvent(t, evs, done)
			}
			if e.EmployeeNumber != "1003" || e.MinorCode != 75 || e.Door == nil || e.Time.IsZero() {
				t.Fatalf("%+v", e)
			}
			cancel()
			if err := waitDone(t, done, 10*time.Second); !errors.Is(err, context.Canceled) {
				t.Fatalf("after cancel: %v", err)
			}
		})
	}
}

func TestSubscribeHeartbeats(t *testing.T) {
	sim, a := start(t, hiksim.Options{HeartbeatInterval: 100 * time.Millisecond}, map[string]any{"stream_idle_seconds": 1})
	_, _, done := subscribe(t, a)
	// Heartbeats keep a quiet stream alive past the idle timeout (must not
	// happen: 2.5 s is 2.5 idle timeouts; heartbeats come every 0.1 s).
	select {
	case err := <-done:
		t.Fatalf("a heartbeating stream ended: %v", err)
	case <-time.After(2500 * time.Millisecond):
	}
	sim.SetFault(hiksim.FaultHeartbeatStop, true)
	began := time.Now()
	err := waitDone(t, done, 10*time.Second)
	if !errors.Is(err, ErrStreamDead) {
		t.Fatalf("%v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("dead stream noticed after %s", d)
	}
}

func TestSubscribeFaults(t *testing.T) {
	for _, tc := range []struct {
		fault    hiksim.Fault
		protocol bool
	}{
		{hiksim.FaultOversizedPart, true},
		{hiksim.FaultMalformedPart, true},
	} {
		t.Run(string(tc.fault), func(t *testing.T) {
			sim, a := start(t, hiksim.Options{HeartbeatInterval: 50 * time.Millisecond}, nil)
			sim.SetFault(tc.fault, true)
			_, _, done := subscribe(t, a)
			err := waitDone(t, done, 15*time.Second)
			var pe *devices.ProtocolError
			if errors.As(err, &pe) != tc.protocol {
				t.Fatalf("%v", err)
			}
		})
	}
	t.Run("double-boundary tolerated", func(t *testing.T) {
		sim, a := start(t, hiksim.Options{HeartbeatInterval: 50 * time.Millisecond}, nil)
		sim.SetFault(hiksim.FaultDoubleBoundary, true)
		_, evs, done := subscribe(t, a)
		time.Sleep(200 * time.Millisecond) // several doubled heartbeats
		want := sim.Badge("1002", "")
		for e := waitEvent(t, evs, done); e.Key != strconv.FormatInt(want.SerialNo, 10); e = waitEvent(t, evs, done) {
		}
	})
	t.Run("reboot ends the stream", func(t *testing.T) {
		sim, a := start(t, hiksim.Options{HeartbeatInterval: 50 * time.Millisecond}, nil)
		_, _, done := subscribe(t, a)
		time.Sleep(200 * time.Millisecond)
		sim.Reboot()
		if err := waitDone(t, done, 10*time.Second); err == nil {
			t.Fatal("nil")
		}
	})
}

func TestHangAndDropAreBounded(t *testing.T) {
	for _, tc := range []struct {
		fault hiksim.Fault
		is    func(error) bool
	}{
		// A hung device is a timeout (retried), not an auth or protocol failure.
		{hiksim.FaultHang, func(err error) bool {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}},
		// An answer cut mid-body is a network failure (retried).
		{hiksim.FaultDrop, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
	} {
		t.Run(string(tc.fault), func(t *testing.T) {
			sim, a := start(t, hiksim.Options{}, map[string]any{"timeout_ms": 500, "stream_idle_seconds": 1})
			sim.SetFault(tc.fault, true)
			began := time.Now()
			_, err := a.Info(ctxT(t, 30*time.Second))
			var ae *devices.AuthError
			var pe *devices.ProtocolError
			if err == nil || errors.As(err, &ae) || errors.As(err, &pe) || !tc.is(err) {
				t.Fatalf("%v", err)
			}
			_, _, done := subscribe(t, a)
			if err := waitDone(t, done, 10*time.Second); err == nil || errors.As(err, &ae) {
				t.Fatalf("subscribe: %v", err)
			}
			if d := time.Since(began); d > 8*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
}

func TestDeviceDownIsNotAuth(t *testing.T) {
	sim, a := start(t, hiksim.Options{}, map[string]any{"timeout_ms": 1000})
	_ = sim.Close()
	err := a.Connect(ctxT(t, 20*time.Second))
	var ae *devices.AuthError
	var pe *devices.ProtocolError
	if err == nil || errors.As(err, &ae) || errors.As(err, &pe) {
		t.Fatalf("%v", err)
	}
}

func TestFactoryAndSettings(t *testing.T) {
	f := Factory()
	if f.Type != "hikvision" || f.Vendor != "Hikvision" || f.Version != "1" || !json.Valid(f.Schema) {
		t.Fatalf("%+v", f)
	}
	for name, raw := range map[string]string{
		"no password": `{"username":"a"}`,
		"unknown":     `{"username":"a","password":"b","colour":"red"}`,
		"scheme":      `{"username":"a","password":"b","scheme":"ftp"}`,
		"page":        `{"username":"a","password":"b","page_size":31}`,
		"zone":        `{"username":"a","password":"b","time_zone":"Mars/Olympus"}`,
		"door":        `{"username":"a","password":"b","doors":[0]}`,
	} {
		if _, err := f.New(devices.Config{Name: "d", Host: "127.0.0.1", Settings: json.RawMessage(raw)}); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := f.New(devices.Config{Name: "d", Settings: json.RawMessage(`{"username":"a","password":"b"}`)}); err == nil {
		t.Error("no host accepted")
	}
	a, err := f.New(devices.Config{Name: "d", Host: "127.0.0.1", Port: 1, Settings: json.RawMessage(`{"username":"a","password":"b"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctxT(t, 20*time.Second)); err == nil {
		t.Fatal("connected to port 1")
	}
	for i := 0; i < 2; i++ {
		if err := a.Close(); err != nil {
			t.Fatalf("Close %d after a failed Connect: %v", i+1, err)
		}
	}
}

func FuzzParseSettings(f *testing.F) {
	f.Add([]byte(`{"username":"a","password":"b","doors":[1,2],"timeout_ms":500}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, loc, err := parseSettings(b); err == nil && (loc == nil || s.PageSize < 1 || s.PageSize > 30 || len(s.Doors) == 0) {
			t.Fatalf("%+v", s)
		}
	})
}

func TestSlowConsumerIsNotADeadStream(t *testing.T) {
	sim, a := start(t, hiksim.Options{HeartbeatInterval: 100 * time.Millisecond}, map[string]any{"stream_idle_seconds": 1})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	evs := make(chan devices.Event, 100)
	done := make(chan error, 1)
	blocked := false
	go func() {
		done <- a.Subscribe(ctx, func(e devices.Event) {
			if !blocked {
				blocked = true
				time.Sleep(1500 * time.Millisecond) // longer than the idle timeout
			}
			evs <- e
		})
	}()
	var first devices.Event
	for first.Key == "" {
		sim.Badge("1001", "")
		select {
		case first = <-evs:
		case err := <-done:
			t.Fatalf("Subscribe ended: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
	}
	want := sim.Badge("1002", "")
	for e := waitEvent(t, evs, done); e.Key != strconv.FormatInt(want.SerialNo, 10); e = waitEvent(t, evs, done) {
	}
}

// A firmware without beginSerialNo: the first catch-up from a cursor is
// refused, remembered, and searched newest first, stopping early.
func TestFetchWithoutSerialFilter(t *testing.T) {
	sim, a := start(t, hiksim.Options{PastEvents: 200, NoSerialFilter: true}, nil)
	got, cursor, _ := fetchAll(t, a, "", nil) // from the beginning: no beginSerialNo needed
	if len(got) != 200 || cursor != "200" {
		t.Fatalf("%d events, cursor %s", len(got), cursor)
	}
	for round := 0; round < 2; round++ {
		for i := 0; i < 35; i++ {
			sim.Badge("1001", "")
		}
		before := sim.SearchRequests()
		more, next, pages := fetchAll(t, a, cursor, nil)
		if len(more) != 35 || pages != 2 || next != devices.Cursor(strconv.Itoa(200+35*(round+1))) {
			t.Fatalf("round %d: %d events in %d pages, cursor %s", round, len(more), pages, next)
		}
		for i, e := range more {
			if e.Key != strconv.Itoa(201+35*round+i) {
				t.Fatalf("round %d: event %d has key %s", round, i, e.Key)
			}
		}
		// Newest first: two pages hold the 35 new ones, the third is all
		// old; the refusal of beginSerialNo costs one request, once.
		want := 3
		if round == 0 {
			want = 4
		}
		if n := sim.SearchRequests() - before; n != want {
			t.Fatalf("round %d: %d search requests, want %d", round, n, want)
		}
		cursor = next
	}
}
