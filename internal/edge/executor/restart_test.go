package executor

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/edge/collector"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

func newCollector(t *testing.T) *collector.Collector {
	t.Helper()
	b, err := buffer.Open(context.Background(), buffer.Options{Config: buffer.Config{Path: filepath.Join(t.TempDir(), "buffer.sqlite"), MaxBytes: 1 << 30}, FSUsage: func(string) (float64, error) { return 0, nil }})
	if err != nil {
		t.Fatal(err)
	}
	c := collector.New(b, collector.Options{Logger: logtest.New(t)})
	t.Cleanup(func() { c.AgentCommands().Close(); b.Close() })
	return c
}

// agent answers its restart commands like a real one would, through the
// same queue calls the HTTP endpoints make; answer decides the ack, or
// nil to stay silent. It stops with ctx.
func agent(ctx context.Context, c *collector.Collector, uid string, answer func(protocol.AgentRestart) *protocol.AgentCommandAck, seen *sync.Map) {
	if _, err := c.Register(uid, protocol.AgentRegistration{AgentUID: uid, ComputerName: "PC-" + uid}, true); err != nil {
		panic(err)
	}
	go func() {
		for ctx.Err() == nil {
			for _, cmd := range c.AgentCommands().Poll(ctx, uid, 200*time.Millisecond) {
				var rs protocol.AgentRestart
				_ = json.Unmarshal(cmd.Payload, &rs)
				if seen != nil {
					n, _ := seen.LoadOrStore(uid, new(int))
					*n.(*int)++
				}
				if a := answer(rs); a != nil {
					_ = c.AgentCommands().Ack(uid, cmd.ID, *a)
				}
			}
		}
	}()
}

func confirm(rs protocol.AgentRestart) *protocol.AgentCommandAck {
	return &protocol.AgentCommandAck{Status: protocol.AckCompleted, PolicyVersion: "1.0.0"}
}

func TestRestartAgentHandler(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		agents  map[string]func(protocol.AgentRestart) *protocol.AgentCommandAck
		wantErr string // "" for success
		want    map[string]string
	}{
		{name: "all confirm (cloud payload)", payload: `{"agent":"all","mode":"graceful","reason":"policy 2.0.0 requires a restart"}`,
			agents: map[string]func(protocol.AgentRestart) *protocol.AgentCommandAck{"a1": confirm, "a2": confirm, "a3": confirm},
			want:   map[string]string{"a1": "confirmed", "a2": "confirmed", "a3": "confirmed"}},
		{name: "star and no mode", payload: `{"agent_uid":"*"}`,
			agents: map[string]func(protocol.AgentRestart) *protocol.AgentCommandAck{"a1": confirm},
			want:   map[string]string{"a1": "confirmed"}},
		{name: "one named agent", payload: `{"agent_uid":"a2","mode":"hot_reload"}`,
			agents: map[string]func(protocol.AgentRestart) *protocol.AgentCommandAck{"a1": confirm, "a2": confirm},
			want:   map[string]string{"a2": "confirmed"}},
		{name: "no agents connected", payload: `{"agent":"all"}`, want: map[string]string{}},
		{name: "unknown agent", payload: `{"agent":"ghost","mode":"forced"}`,
			agents:  map[string]func(protocol.AgentRestart) *protocol.AgentCommandAck{"a1": confirm},
			wantErr: `restart_agent: agent: unknown agent "ghost"`},
		{name: "bad mode", payload: `{"agent":"all","mode":"reboot"}`, wantErr: "restart_agent: mode: must be graceful, forced or hot_reload"},
		{name: "bad timeout", payload: `{"agent":"all","timeout_seconds":-5}`, wantErr: "restart_agent: timeout_seconds"},
		{name: "disagreeing names", payload: `{"agent":"a1","agent_uid":"a2"}`, wantErr: "restart_agent: agent:"},
		{name: "malformed", payload: `{"agent":`, wantErr: "restart_agent: payload:"},
		{name: "silent agent named", payload: `{"agent":"all","timeout_seconds":1}`,
			agents: map[string]func(protocol.AgentRestart) *protocol.AgentCommandAck{"a1": confirm,
				"mute": func(protocol.AgentRestart) *protocol.AgentCommandAck { return nil }},
			wantErr: "1 of 2 agents did not confirm the graceful restart: mute (timeout: no confirmation within 1s)"},
		{name: "agent reports failure", payload: `{"agent":"all","mode":"forced"}`,
			agents: map[string]func(protocol.AgentRestart) *protocol.AgentCommandAck{"a1": confirm,
				"broken": func(protocol.AgentRestart) *protocol.AgentCommandAck {
					return &protocol.AgentCommandAck{Status: protocol.AckFailed, Error: "service did not stop"}
				}},
			wantErr: "broken (failed: service did not stop)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := newCollector(t)
			for uid, answer := range tt.agents {
				agent(ctx, c, uid, answer, nil)
			}
			h := RestartAgentHandler(RestartOptions{Agents: c.Agents(), Commands: c.AgentCommands(), Timeout: 20 * time.Second})
			res, err := h(ctx, protocol.Command{ID: "c1", Type: "restart_agent", Payload: json.RawMessage(tt.payload)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil {
				var r RestartResult
				if err := json.Unmarshal(res, &r); err != nil {
					t.Fatal(err)
				}
				got := map[string]string{}
				for _, a := range r.Agents {
					got[a.AgentUID] = a.Status
					if a.Status == "confirmed" && a.PolicyVersion != "1.0.0" {
						t.Fatalf("policy version not reported: %+v", a)
					}
				}
				if len(got) != len(tt.want) || r.Confirmed != len(tt.want) {
					t.Fatalf("result %+v, want %v", r, tt.want)
				}
				for uid, s := range tt.want {
					if got[uid] != s {
						t.Fatalf("%s: %q, want %q (%+v)", uid, got[uid], s, r)
					}
				}
			}
			if n := c.AgentCommands().Pending(); n != 0 {
				t.Fatalf("%d agent commands left queued", n)
			}
		})
	}
}

// TestRestartThroughLedger: restart_agent runs once per command id; a
// redelivery is answered from the ledger and the agents are not restarted
// again; a cancelled run is not recorded and runs again.
func TestRestartThroughLedger(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newCollector(t)
	var seen sync.Map
	agent(ctx, c, "a1", confirm, &seen)
	agent(ctx, c, "a2", confirm, &seen)
	ex, err := Open(Options{Dir: t.TempDir(), Handlers: map[string]Handler{
		"restart_agent": RestartAgentHandler(RestartOptions{Agents: c.Agents(), Commands: c.AgentCommands()})}})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	cmd := protocol.Command{ID: "0199aaaa-0000-7000-8000-00000000000a", Type: "restart_agent", Payload: json.RawMessage(`{"agent":"all"}`)}
	first, err := ex.Execute(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ex.Execute(ctx, cmd)
	if err != nil || string(again) != string(first) {
		t.Fatalf("redelivery: %s %v, want %s", again, err, first)
	}
	for _, uid := range []string{"a1", "a2"} {
		n, _ := seen.Load(uid)
		if n == nil || *n.(*int) != 1 {
			t.Fatalf("%s restarted %v times, want 1", uid, n)
		}
	}
	// A silent agent and a shutdown mid-wait: not recorded.
	agent(ctx, c, "mute", func(protocol.AgentRestart) *protocol.AgentCommandAck { return nil }, nil)
	short, stop := context.WithTimeout(ctx, 500*time.Millisecond)
	defer stop()
	cmd2 := protocol.Command{ID: "0199aaaa-0000-7000-8000-00000000000b", Type: "restart_agent", Payload: json.RawMessage(`{"agent":"mute"}`)}
	if _, err := ex.Execute(short, cmd2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("interrupted run: %v", err)
	}
	if ok, _ := ex.Executed(ctx, cmd2.ID); ok {
		t.Fatal("an interrupted restart was recorded in the ledger")
	}
	if n := c.AgentCommands().Pending(); n != 0 {
		t.Fatalf("%d agent commands left after the interruption", n)
	}
}
