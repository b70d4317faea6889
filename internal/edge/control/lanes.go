package control

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Lanes: the control client runs commands concurrently where that is safe.
// Each command gets a lane from its type and payload (laneOf); commands
// whose lanes conflict run one at a time in arrival order, the others run
// concurrently. A lane is a family and a target: two lanes conflict when
// they are of the same family and either has no target (the whole family)
// or both have the same target. So
//
//	device_command       device:<device_id>, or device:serial:<serial> when device_id is 0
//	devices_update       device (the whole family: ordered against every device_command)
//	restart_agent <uid>  agent:<uid>
//	restart_agent all    agent (the whole family: ordered against every agent command)
//	revoke_agent         agent:<agent_uid>
//	policy_update        policy
//	rotate_api_key       key
//	replay_dead_letters  deadletters
//	anything else        its type, as a family of its own
//
// A payload that does not name its target (unparseable, or no id) gets
// its type's own lane, so the handler runs and reports the error. A device
// named once by id and once by serial is two lanes (the cloud names a
// device it knows by its id).
//
// Bounds: at most MaxConcurrentCommands commands run at once (8, at
// most 64), at most
// maxLaneQueue wait per lane and maxPending in all; a command beyond them is
// not queued (it was acknowledged received, not completed, so the cloud
// redelivers it): the back-pressure of the single queue before lanes.

// lane is where a command runs: a family, and a target in it ("" = all).
type lane struct{ family, target string }

// conflicts reports whether commands of lanes a and b must run in order.
func (a lane) conflicts(b lane) bool {
	return a.family == b.family && (a.target == "" || b.target == "" || a.target == b.target)
}

// String is the lane as documented: family[:target].
func (a lane) String() string {
	if a.target == "" {
		return a.family
	}
	return a.family + ":" + a.target
}

// laneOf is a command's lane (see Lanes above).
func laneOf(cmd protocol.Command) lane {
	own := lane{family: cmd.Type}
	switch cmd.Type {
	case protocol.CommandDeviceCommand:
		var p protocol.DeviceCommandPayload
		if json.Unmarshal(cmd.Payload, &p) != nil {
			return own
		}
		if p.DeviceID > 0 {
			return lane{"device", strconv.FormatInt(p.DeviceID, 10)}
		}
		if p.DeviceSerial != "" {
			return lane{"device", "serial:" + p.DeviceSerial}
		}
		return own
	case protocol.CommandDevicesUpdate:
		return lane{family: "device"}
	case protocol.CommandRestartAgent:
		var p struct {
			Agent    string `json:"agent"`
			AgentUID string `json:"agent_uid"`
		}
		if json.Unmarshal(cmd.Payload, &p) != nil {
			return own
		}
		uid := p.Agent
		if uid == "" {
			uid = p.AgentUID
		}
		if uid == "" || uid == "all" || uid == "*" {
			return lane{family: "agent"}
		}
		return lane{"agent", uid}
	case protocol.CommandRevokeAgent:
		var p protocol.RevokeAgentPayload
		if json.Unmarshal(cmd.Payload, &p) != nil || p.AgentUID == "" {
			return own
		}
		return lane{"agent", p.AgentUID}
	case protocol.CommandPolicyUpdate:
		return lane{family: "policy"}
	case protocol.CommandRotateAPIKey:
		return lane{family: "key"}
	case protocol.CommandReplayDeadLetters:
		return lane{family: "deadletters"}
	}
	return own
}

// Lane bounds (MaxConcurrentCommands is in Config).
const (
	// defaultMaxConcurrent is MaxConcurrentCommands' default, and
	// maxConcurrent its cap.
	defaultMaxConcurrent = 8
	maxConcurrent        = 64
	// maxLaneQueue is how many commands wait in one lane.
	maxLaneQueue = 32
	// maxPending is how many commands wait in all (the single queue's
	// bound before lanes).
	maxPending = 256
)

// queued is a command waiting for its lane.
type queued struct {
	cmd  protocol.Command
	lane lane
}

// dispatcher runs commands in lanes on goroutines of its own, until its
// context ends; wait then waits for the running ones. One per session
// (WebSocket or REST fallback period).
type dispatcher struct {
	ctx     context.Context
	run     func(context.Context, protocol.Command)
	maxBusy int

	mu      sync.Mutex
	pending []queued        // arrival order, not started
	running map[string]lane // command id → lane
	closed  bool
	wg      sync.WaitGroup
}

// newDispatcher returns a dispatcher that runs commands with run, at most
// maxBusy at once (defaultMaxConcurrent when not positive, at most
// maxConcurrent).
func newDispatcher(ctx context.Context, maxBusy int, run func(context.Context, protocol.Command)) *dispatcher {
	if maxBusy <= 0 {
		maxBusy = defaultMaxConcurrent
	}
	maxBusy = min(maxBusy, maxConcurrent)
	return &dispatcher{ctx: ctx, run: run, maxBusy: maxBusy, running: map[string]lane{}}
}

// submit queues cmd in its lane and starts what may start. It returns
// false when cmd was not taken: a bound is reached, or the dispatcher is
// done. A command whose id is already waiting or running here is taken
// and dropped: its first copy acknowledges it.
func (d *dispatcher) submit(cmd protocol.Command) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.ctx.Err() != nil {
		return false
	}
	if _, ok := d.running[cmd.ID]; ok {
		return true
	}
	l := laneOf(cmd)
	same := 0
	for _, q := range d.pending {
		if q.cmd.ID == cmd.ID {
			return true
		}
		if q.lane == l {
			same++
		}
	}
	if len(d.pending) >= maxPending || same >= maxLaneQueue {
		return false
	}
	d.pending = append(d.pending, queued{cmd, l})
	d.schedule()
	return true
}

// schedule starts, in arrival order, every waiting command whose lane
// conflicts with no running command and no earlier waiting one, while
// fewer than maxBusy run. Called with mu held.
func (d *dispatcher) schedule() {
	if d.closed || d.ctx.Err() != nil {
		return
	}
	var blocked []lane
	for i := 0; i < len(d.pending) && len(d.running) < d.maxBusy; {
		q := d.pending[i]
		if d.conflicts(q.lane, blocked) {
			blocked = append(blocked, q.lane)
			i++
			continue
		}
		d.pending = append(d.pending[:i], d.pending[i+1:]...)
		d.running[q.cmd.ID] = q.lane
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.run(d.ctx, q.cmd)
			d.mu.Lock()
			delete(d.running, q.cmd.ID)
			d.schedule()
			d.mu.Unlock()
		}()
	}
}

// conflicts reports whether l must wait: behind a running command or an
// earlier waiting one (blocked). Called with mu held.
func (d *dispatcher) conflicts(l lane, blocked []lane) bool {
	for _, r := range d.running {
		if l.conflicts(r) {
			return true
		}
	}
	for _, b := range blocked {
		if l.conflicts(b) {
			return true
		}
	}
	return false
}

// wait stops starting commands (the waiting ones are dropped: not
// completed, so redelivered) and waits for the running ones, which end
// when the dispatcher's context does.
func (d *dispatcher) wait() {
	d.mu.Lock()
	d.closed = true
	d.pending = nil
	d.mu.Unlock()
	d.wg.Wait()
}
