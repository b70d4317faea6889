package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

func TestLaneOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ, payload, want string
	}{
		{protocol.CommandDeviceCommand, `{"device_id":7,"device_serial":"DS-1","command":"open_door"}`, "device:7"},
		{protocol.CommandDeviceCommand, `{"device_serial":"DS-1","command":"open_door"}`, "device:serial:DS-1"},
		{protocol.CommandDeviceCommand, `{"command":"open_door"}`, "device_command"},
		{protocol.CommandDeviceCommand, `not json`, "device_command"},
		{protocol.CommandDevicesUpdate, `{"version":3,"devices":[]}`, "device"},
		{protocol.CommandRestartAgent, `{"agent":"all","mode":"service"}`, "agent"},
		{protocol.CommandRestartAgent, `{"agent":"*"}`, "agent"},
		{protocol.CommandRestartAgent, `{}`, "agent"},
		{protocol.CommandRestartAgent, `{"agent":"pc-1"}`, "agent:pc-1"},
		{protocol.CommandRestartAgent, `{"agent_uid":"pc-2"}`, "agent:pc-2"},
		{protocol.CommandRestartAgent, `[1]`, "restart_agent"},
		{protocol.CommandRevokeAgent, `{"agent_uid":"pc-1"}`, "agent:pc-1"},
		{protocol.CommandRevokeAgent, `{}`, "revoke_agent"},
		{protocol.CommandPolicyUpdate, `{}`, "policy"},
		{protocol.CommandRotateAPIKey, `{}`, "key"},
		{protocol.CommandReplayDeadLetters, `{}`, "deadletters"},
		{"something_new", `{}`, "something_new"},
	} {
		if got := laneOf(protocol.Command{Type: tc.typ, Payload: json.RawMessage(tc.payload)}).String(); got != tc.want {
			t.Errorf("%s %s: lane %q, want %q", tc.typ, tc.payload, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b lane
		want bool
	}{
		{lane{"device", "7"}, lane{"device", "7"}, true},
		{lane{"device", "7"}, lane{"device", "8"}, false},
		{lane{"device", ""}, lane{"device", "8"}, true},
		{lane{"agent", "a"}, lane{"agent", ""}, true},
		{lane{"agent", "a"}, lane{"device", "a"}, false},
		{lane{"policy", ""}, lane{"key", ""}, false},
	} {
		if got := tc.a.conflicts(tc.b); got != tc.want || tc.b.conflicts(tc.a) != tc.want {
			t.Errorf("%v conflicts %v: %v, want %v (both ways)", tc.a, tc.b, got, tc.want)
		}
	}
}

// gates is an Execute that records starts and ends in order and blocks
// each command until its gate opens (or its context ends); a command
// without a gate returns at once.
type gates struct {
	mu      sync.Mutex
	log     []string
	gate    map[string]chan struct{}
	runs    map[string]int
	active  atomic.Int32
	started chan string
	// ledger, when set, answers a command that completed without running
	// it again (as the executor's ledger does): runs counts runs only.
	ledger bool
	done   map[string]bool
}

func newGates(blocked ...string) *gates {
	g := &gates{gate: map[string]chan struct{}{}, runs: map[string]int{}, done: map[string]bool{}, started: make(chan string, 100)}
	for _, id := range blocked {
		g.gate[id] = make(chan struct{})
	}
	return g
}

func (g *gates) execute(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
	g.active.Add(1)
	defer g.active.Add(-1)
	g.mu.Lock()
	if g.ledger && g.done[cmd.ID] {
		g.mu.Unlock()
		return json.RawMessage(`{"ok":true}`), nil
	}
	g.log = append(g.log, "start "+cmd.ID)
	g.runs[cmd.ID]++
	gate := g.gate[cmd.ID]
	g.mu.Unlock()
	g.started <- cmd.ID
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	g.mu.Lock()
	g.log = append(g.log, "end "+cmd.ID)
	g.done[cmd.ID] = true
	g.mu.Unlock()
	return json.RawMessage(`{"ok":true}`), nil
}

func (g *gates) open(id string) { close(g.gate[id]) }

func (g *gates) snapshot() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.log)
}

// waitStarted waits (generously) for the commands ids to start, in any order.
func (g *gates) waitStarted(t *testing.T, ids ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case id := <-g.started:
			delete(want, id)
		case <-deadline:
			t.Fatalf("commands %v did not start; log %v", want, g.snapshot())
		}
	}
}

// notStarted checks that no command starts for a short while. Rationale
// for the short bound: a command free to start starts within microseconds
// of its arrival, so 300 ms shows a wrong lane mapping on any machine;
// under load the check can only pass wrongly, never fail wrongly.
func (g *gates) notStarted(t *testing.T) {
	t.Helper()
	select {
	case id := <-g.started:
		t.Fatalf("command %s started while its lane was busy; log %v", id, g.snapshot())
	case <-time.After(300 * time.Millisecond):
	}
}

// fakeCloud is a control channel that sends the commands given to it and
// collects the gateway's acks.
type fakeCloud struct {
	srv  *httptest.Server
	cmds chan protocol.Command
	acks chan protocol.CommandAck
	// seen counts the acks waitAck has read, by id and phase.
	seen map[[2]string]int
}

func newFakeCloud(t *testing.T) *fakeCloud {
	fc := &fakeCloud{cmds: make(chan protocol.Command, 100), acks: make(chan protocol.CommandAck, 1000), seen: map[[2]string]int{}}
	up := websocket.Upgrader{}
	fc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		gone := make(chan struct{})
		go func() {
			defer close(gone)
			for {
				var env protocol.Envelope
				if err := ws.ReadJSON(&env); err != nil {
					return
				}
				if env.Type == protocol.MsgCommandAck {
					var a protocol.CommandAck
					_ = json.Unmarshal(env.Data, &a)
					fc.acks <- a
				}
			}
		}()
		for {
			select {
			case <-gone:
				return
			case cmd := <-fc.cmds:
				data, _ := json.Marshal(cmd)
				if ws.WriteJSON(protocol.Envelope{V: protocol.ControlVersion, Type: protocol.MsgCommand, Data: data}) != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(fc.srv.Close)
	return fc
}

// send queues commands to the gateway.
func (fc *fakeCloud) send(cmds ...protocol.Command) {
	for _, c := range cmds {
		fc.cmds <- c
	}
}

// waitAck waits (generously) for an ack of id in phase that no earlier
// waitAck took. Test goroutine only.
func (fc *fakeCloud) waitAck(t *testing.T, id, phase string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	k := [2]string{id, phase}
	for {
		if fc.seen[k] > 0 {
			fc.seen[k]--
			return
		}
		select {
		case a := <-fc.acks:
			fc.seen[[2]string{a.CommandID, a.Phase}]++
		case <-deadline:
			t.Fatalf("no %s ack for %s", phase, id)
		}
	}
}

// runClient runs a control client against fc until the returned stop,
// which cancels it and waits for Run to return.
func runClient(t *testing.T, fc *fakeCloud, execute func(context.Context, protocol.Command) (json.RawMessage, error), maxBusy int) (stop func()) {
	c := New(Options{SocketURL: "ws" + strings.TrimPrefix(fc.srv.URL, "http"), BaseURL: fc.srv.URL, APIKey: func() string { return "k" },
		Config:    Config{BackoffInitial: 10 * time.Millisecond, MaxConcurrentCommands: maxBusy},
		Heartbeat: func() protocol.Heartbeat { return protocol.Heartbeat{} }, Execute: execute, Logger: logtest.New(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the client did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func id(n int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", n) }

func cmdOf(n int, typ, payload string) protocol.Command {
	return protocol.Command{ID: id(n), Type: typ, Payload: json.RawMessage(payload)}
}

// TestAHangingAgentRestartDoesNotDelayADeviceCommand: a restart_agent that
// waits (here: forever) for its agents holds its lane only; a device
// command behind it completes, and stopping the client cancels the
// restart and waits for it.
func TestAHangingAgentRestartDoesNotDelayADeviceCommand(t *testing.T) {
	t.Parallel()
	fc := newFakeCloud(t)
	g := newGates(id(1))
	stop := runClient(t, fc, g.execute, 0)
	fc.send(cmdOf(1, protocol.CommandRestartAgent, `{"agent":"all"}`),
		cmdOf(2, protocol.CommandDeviceCommand, `{"device_id":7,"command":"open_door"}`))
	fc.waitAck(t, id(1), protocol.AckReceived)
	fc.waitAck(t, id(2), protocol.AckCompleted)
	if log := g.snapshot(); !slices.Contains(log, "start "+id(1)) || slices.Contains(log, "end "+id(1)) {
		t.Fatalf("log %v: want the restart started and still running", log)
	}
	stop()
	if n := g.active.Load(); n != 0 {
		t.Fatalf("%d commands still running after the client stopped", n)
	}
}

// TestSameDeviceInOrderDifferentDevicesOverlap: two commands for one
// device run one after the other in arrival order; commands for two
// devices run at the same time.
func TestSameDeviceInOrderDifferentDevicesOverlap(t *testing.T) {
	t.Parallel()
	fc := newFakeCloud(t)
	g := newGates(id(1), id(3), id(4))
	runClient(t, fc, g.execute, 0)
	fc.send(cmdOf(1, protocol.CommandDeviceCommand, `{"device_id":7,"command":"open_door"}`),
		cmdOf(2, protocol.CommandDeviceCommand, `{"device_id":7,"command":"close_door"}`))
	g.waitStarted(t, id(1))
	fc.waitAck(t, id(2), protocol.AckReceived)
	g.notStarted(t)
	g.open(id(1))
	fc.waitAck(t, id(2), protocol.AckCompleted)
	if log, want := g.snapshot(), []string{"start " + id(1), "end " + id(1), "start " + id(2), "end " + id(2)}; !slices.Equal(log, want) {
		t.Fatalf("log %v, want %v", log, want)
	}
	g.waitStarted(t, id(2))

	// Both block until the test opens them: they finish only if both run
	// at once.
	fc.send(cmdOf(3, protocol.CommandDeviceCommand, `{"device_id":1,"command":"open_door"}`),
		cmdOf(4, protocol.CommandDeviceCommand, `{"device_serial":"DS-2","command":"open_door"}`))
	g.waitStarted(t, id(3), id(4))
	g.open(id(3))
	g.open(id(4))
	fc.waitAck(t, id(3), protocol.AckCompleted)
	fc.waitAck(t, id(4), protocol.AckCompleted)
}

// TestAnAgentCommandAfterAllWaitsForIt: a restart of one agent (and a
// revocation) after a restart of all agents waits for it; a device
// command meanwhile does not; a devices_update waits for the device
// commands before it.
func TestAnAgentCommandAfterAllWaitsForIt(t *testing.T) {
	t.Parallel()
	fc := newFakeCloud(t)
	g := newGates(id(1), id(5))
	runClient(t, fc, g.execute, 0)
	fc.send(cmdOf(1, protocol.CommandRestartAgent, `{"agent":"all"}`),
		cmdOf(2, protocol.CommandRestartAgent, `{"agent":"pc-1"}`),
		cmdOf(3, protocol.CommandRevokeAgent, `{"agent_uid":"pc-2"}`),
		cmdOf(4, protocol.CommandDeviceCommand, `{"device_id":7,"command":"open_door"}`))
	g.waitStarted(t, id(1), id(4))
	fc.waitAck(t, id(4), protocol.AckCompleted)
	fc.waitAck(t, id(3), protocol.AckReceived)
	g.notStarted(t)
	g.open(id(1))
	g.waitStarted(t, id(2), id(3))
	fc.waitAck(t, id(2), protocol.AckCompleted)
	fc.waitAck(t, id(3), protocol.AckCompleted)

	fc.send(cmdOf(5, protocol.CommandDeviceCommand, `{"device_id":7,"command":"open_door"}`),
		cmdOf(6, protocol.CommandDevicesUpdate, `{"version":2,"devices":[]}`))
	g.waitStarted(t, id(5))
	fc.waitAck(t, id(6), protocol.AckReceived)
	g.notStarted(t)
	g.open(id(5))
	fc.waitAck(t, id(6), protocol.AckCompleted)
}

// TestARedeliveryWhileRunningRunsOnce: the cloud sends a command again
// while it runs (its completed ack is late); the copy is acknowledged
// received and not run, the command completes once.
func TestARedeliveryWhileRunningRunsOnce(t *testing.T) {
	t.Parallel()
	fc := newFakeCloud(t)
	g := newGates(id(1))
	runClient(t, fc, g.execute, 0)
	c := cmdOf(1, protocol.CommandDeviceCommand, `{"device_id":7,"command":"open_door"}`)
	fc.send(c)
	g.waitStarted(t, id(1))
	fc.waitAck(t, id(1), protocol.AckReceived)
	fc.send(c, c)
	fc.waitAck(t, id(1), protocol.AckReceived)
	fc.waitAck(t, id(1), protocol.AckReceived)
	g.open(id(1))
	fc.waitAck(t, id(1), protocol.AckCompleted)
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := g.runs[id(1)]; n != 1 {
		t.Fatalf("the command ran %d times", n)
	}
}

// TestLaneBounds: at most maxBusy commands run at once (the others wait
// their turn), one lane holds at most maxLaneQueue waiting commands, and
// wait cancels nothing itself but drops the waiting ones.
func TestLaneBounds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	g := newGates()
	for n := range 40 {
		g.gate[id(n)] = make(chan struct{})
	}
	d := newDispatcher(ctx, 2, func(ctx context.Context, cmd protocol.Command) { _, _ = g.execute(ctx, cmd) })
	for n := range 3 {
		if !d.submit(cmdOf(n, protocol.CommandDeviceCommand, fmt.Sprintf(`{"device_id":%d}`, n+1))) {
			t.Fatalf("command %d refused", n)
		}
	}
	g.waitStarted(t, id(0), id(1))
	g.notStarted(t)
	g.open(id(0))
	g.waitStarted(t, id(2))
	// Two run (ids 1 and 2); fill a free lane: maxLaneQueue wait.
	taken := 0
	for n := 3; n < 40; n++ {
		if d.submit(cmdOf(n, protocol.CommandDeviceCommand, `{"device_id":50}`)) {
			taken++
		}
	}
	if taken != maxLaneQueue {
		t.Fatalf("lane took %d commands, want %d (all waiting: two run already)", taken, maxLaneQueue)
	}
	cancel()
	d.wait()
	if n := g.active.Load(); n != 0 {
		t.Fatalf("%d commands running after wait", n)
	}
	if d.submit(cmdOf(99, "x", `{}`)) {
		t.Fatal("a stopped dispatcher took a command")
	}
}

// TestStoppingLeavesNoGoroutines: a client stopped with commands running
// and waiting ends all its goroutines. Not parallel: it counts the
// process's goroutines.
func TestStoppingLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	fc := newFakeCloud(t)
	g := newGates(id(1), id(2))
	stop := runClient(t, fc, g.execute, 1)
	fc.send(cmdOf(1, protocol.CommandRestartAgent, `{"agent":"all"}`),
		cmdOf(2, protocol.CommandDeviceCommand, `{"device_id":7}`),
		cmdOf(3, protocol.CommandDeviceCommand, `{"device_id":7}`))
	g.waitStarted(t, id(1))
	fc.waitAck(t, id(3), protocol.AckReceived)
	stop()
	fc.srv.Close()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := g.active.Load(); n != 0 {
		t.Fatalf("%d commands running after stop", n)
	}
}

// TestRESTFallbackRunsInLanes: over the REST long-poll too, a hanging
// restart does not hold a device command, and the restart listed again
// by later polls while it runs is not run again.
func TestRESTFallbackRunsInLanes(t *testing.T) {
	t.Parallel()
	restart := cmdOf(1, protocol.CommandRestartAgent, `{"agent":"all"}`)
	door := cmdOf(2, protocol.CommandDeviceCommand, `{"device_id":7,"command":"open_door"}`)
	var mu sync.Mutex
	completed := map[string]bool{}
	acks := make(chan protocol.CommandAck, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == protocol.PathGatewayCommands:
			// Every poll lists what is not completed: the restart again
			// and again while it runs. Paced, as a long-poll would be.
			time.Sleep(20 * time.Millisecond)
			var list protocol.CommandList
			mu.Lock()
			for _, c := range []protocol.Command{restart, door} {
				if !completed[c.ID] {
					list.Commands = append(list.Commands, c)
				}
			}
			mu.Unlock()
			_ = json.NewEncoder(w).Encode(list)
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v2/gateway/commands/"):
			var a protocol.CommandAck
			_ = json.NewDecoder(r.Body).Decode(&a)
			if a.Phase != protocol.AckReceived {
				mu.Lock()
				completed[a.CommandID] = true
				mu.Unlock()
			}
			acks <- a
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r) // the WebSocket: refused, so the client polls
		}
	}))
	defer srv.Close()
	g := newGates(id(1))
	// A poll under way when the restart completes lists it once more: the
	// ledger answers that copy (the executor's, emulated here).
	g.ledger = true
	c := New(Options{SocketURL: "ws" + strings.TrimPrefix(srv.URL, "http") + protocol.PathGatewaySocket, BaseURL: srv.URL,
		APIKey: func() string { return "k" }, Config: Config{BackoffInitial: 10 * time.Millisecond, FallbackAfter: 1},
		Heartbeat: func() protocol.Heartbeat { return protocol.Heartbeat{} }, Execute: g.execute, Logger: logtest.New(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.After(10 * time.Second)
	polls := 0
	for {
		select {
		case a := <-acks:
			if a.CommandID == id(1) && a.Phase == protocol.AckReceived {
				polls++
			}
			if a.CommandID != id(2) || a.Phase != protocol.AckCompleted {
				continue
			}
		case <-deadline:
			t.Fatalf("the door command did not complete over REST; log %v", g.snapshot())
		}
		break
	}
	// Let the restart be listed a few more times while it runs.
	for polls < 3 {
		select {
		case a := <-acks:
			if a.CommandID == id(1) && a.Phase == protocol.AckReceived {
				polls++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the restart was not listed again")
		}
	}
	g.open(id(1))
	for {
		select {
		case a := <-acks:
			if a.CommandID != id(1) || a.Phase != protocol.AckCompleted {
				continue
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the restart did not complete once released")
		}
		break
	}
	// Let late copies arrive (300 ms: a wrong second run would show; under
	// load this can only pass wrongly, never fail wrongly).
	time.Sleep(300 * time.Millisecond)
	g.mu.Lock()
	runs := g.runs[id(1)]
	g.mu.Unlock()
	if runs != 1 {
		t.Fatalf("the restart ran %d times, listed %d times while it ran", runs, polls)
	}
}
