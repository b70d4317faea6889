package control_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// servedReplica is an Agent API replica served as the binary serves it
// (service.Serve), with the given server timeouts.
func (w *world) servedReplica(t *testing.T, timeouts service.HTTPTimeouts) *replica {
	t.Helper()
	cfg := agentapi.Config{}
	cfg.HTTP = timeouts
	api := agentapitest.Start(t, w.ingest, agentapitest.Options{Config: cfg})
	time.Sleep(100 * time.Millisecond) // LISTEN in place
	// dial and the REST helpers only need the URL.
	return &replica{srv: &httptest.Server{URL: api.URL}, stop: api.Stop}
}

func TestLongPollAndWebSocketOutliveTheWriteTimeout(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	timeouts := service.HTTPTimeouts{ReadHeader: time.Second, BodyMinRate: 1000, BodyGrace: 500 * time.Millisecond,
		Write: 500 * time.Millisecond, Idle: time.Second}
	r := w.servedReplica(t, timeouts)

	// REST long-poll: waits 3 s, six times the write timeout, and still
	// answers; a command enqueued meanwhile arrives.
	poll := func(wait string) (int, protocol.CommandList, error) {
		req, _ := http.NewRequest(http.MethodGet, r.srv.URL+protocol.PathGatewayCommands+"?wait="+wait, nil)
		req.Header.Set(protocol.HeaderAPIKey, w.a.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, protocol.CommandList{}, err
		}
		defer resp.Body.Close()
		var l protocol.CommandList
		err = json.NewDecoder(resp.Body).Decode(&l)
		return resp.StatusCode, l, err
	}
	start := time.Now()
	code, l, err := poll("3s")
	if err != nil || code != http.StatusOK || len(l.Commands) != 0 || time.Since(start) < 2900*time.Millisecond {
		t.Fatalf("empty long-poll past the write timeout: %d %+v %v after %v", code, l, err, time.Since(start))
	}
	got := make(chan protocol.CommandList, 1)
	go func() { _, l, _ := poll("5s"); got <- l }()
	time.Sleep(2 * timeouts.Write)
	cmd := w.enq(w.a, protocol.CommandRestartAgent, 0)
	select {
	case l := <-got:
		if len(l.Commands) != 1 || l.Commands[0].ID != cmd.ID.String() {
			t.Fatalf("long-poll returned %+v", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll did not return the command")
	}

	// WebSocket: idle for three write timeouts, then a heartbeat and a
	// command both ways.
	c, _, err := r.dial(t, w.b.key)
	if err != nil {
		t.Fatal(err)
	}
	c.next(protocol.MsgWelcome, 5*time.Second)
	time.Sleep(3 * timeouts.Write)
	c.send(protocol.MsgHeartbeat, protocol.Heartbeat{ConnectedAgents: 3})
	cmd = w.enq(w.b, protocol.CommandRestartAgent, 0)
	if got, ok := c.command(5 * time.Second); !ok || got.ID != cmd.ID.String() {
		t.Fatal("the socket did not deliver a command after outliving the write timeout")
	}
	c.send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: cmd.ID.String(), Phase: protocol.AckCompleted})
	deadline := time.Now().Add(5 * time.Second)
	for w.status(cmd.ID.String()) != commandqueue.StatusCompleted && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s := w.status(cmd.ID.String()); s != commandqueue.StatusCompleted {
		t.Fatalf("ack over the socket: status %s", s)
	}
}
