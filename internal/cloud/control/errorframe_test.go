package control_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// refusal sends one raw frame and returns the error frame that answers it.
func (c *client) refusal(raw []byte) protocol.ControlError {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, raw); err != nil {
		c.t.Fatal(err)
	}
	env, ok := c.next(protocol.MsgError, 10*time.Second)
	if !ok {
		c.t.Fatalf("no error frame for %.200s", raw)
	}
	var ce protocol.ControlError
	if err := json.Unmarshal(env.Data, &ce); err != nil {
		c.t.Fatalf("error frame %s: %v", env.Data, err)
	}
	return ce
}

// quiet asserts that no error frame arrives within d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	if env, ok := c.next(protocol.MsgError, d); ok {
		c.t.Fatalf("unexpected error frame %s", env.Data)
	}
}

func TestEveryRefusedMessageIsAnsweredWithAnErrorFrame(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.replica(control.Options{}, commandqueue.Options{})
	c, _, err := r.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	c.next(protocol.MsgWelcome, 5*time.Second)
	other := w.enq(w.b, protocol.CommandRestartAgent, 0) // another organisation's command
	unknown := uuid.NewString()
	long := strings.Repeat("9", 51)
	tests := []struct {
		name, frame    string
		code, typ, fld string
		commandID      string
	}{
		{"not JSON", `hello`, protocol.ErrCodeMalformed, "", "", ""},
		{"not an object", `[1,2]`, protocol.ErrCodeMalformed, "", "", ""},
		{"unsupported version", `{"v":2,"type":"heartbeat","data":{}}`, protocol.ErrCodeValidation, "heartbeat", "v", ""},
		{"no type", `{"v":1}`, protocol.ErrCodeValidation, "", "type", ""},
		{"unknown type", `{"v":1,"type":"teleport","data":{}}`, protocol.ErrCodeValidation, "teleport", "type", ""},
		{"heartbeat without data", `{"v":1,"type":"heartbeat"}`, protocol.ErrCodeValidation, "heartbeat", "data", ""},
		{"heartbeat field of the wrong type", `{"v":1,"type":"heartbeat","data":{"queue_depth":"many"}}`, protocol.ErrCodeValidation, "heartbeat", "data.queue_depth", ""},
		{"heartbeat number out of column range", `{"v":1,"type":"heartbeat","data":{"queue_depth":3000000000}}`, protocol.ErrCodeValidation, "heartbeat", "data.queue_depth", ""},
		{"heartbeat negative count", `{"v":1,"type":"heartbeat","data":{"connected_agents":-1}}`, protocol.ErrCodeValidation, "heartbeat", "data.connected_agents", ""},
		{"heartbeat version too long", `{"v":1,"type":"heartbeat","data":{"versions":{"gateway":"` + long + `"}}}`, protocol.ErrCodeValidation, "heartbeat", "data.versions.gateway", ""},
		{"heartbeat version with NUL", `{"v":1,"type":"heartbeat","data":{"versions":{"gateway":"2.0\u0000"}}}`, protocol.ErrCodeValidation, "heartbeat", "data.versions.gateway", ""},
		{"ack without data", `{"v":1,"type":"command_ack"}`, protocol.ErrCodeValidation, "command_ack", "data", ""},
		{"ack with a bad command id", `{"v":1,"type":"command_ack","data":{"command_id":"nope","phase":"completed"}}`, protocol.ErrCodeValidation, "command_ack", "data.command_id", "nope"},
		{"ack with a bad phase", `{"v":1,"type":"command_ack","data":{"command_id":"` + unknown + `","phase":"done"}}`, protocol.ErrCodeValidation, "command_ack", "data.phase", unknown},
		{"ack with NUL in its error", `{"v":1,"type":"command_ack","data":{"command_id":"` + unknown + `","phase":"failed","error":"x\u0000"}}`, protocol.ErrCodeValidation, "command_ack", "data.error", unknown},
		{"ack with NUL in its result", `{"v":1,"type":"command_ack","data":{"command_id":"` + unknown + `","phase":"completed","result":{"k":"\u0000"}}}`, protocol.ErrCodeValidation, "command_ack", "data.result", unknown},
		{"completed ack of an unknown command", `{"v":1,"type":"command_ack","data":{"command_id":"` + unknown + `","phase":"completed"}}`, protocol.ErrCodeNotFound, "command_ack", "data.command_id", unknown},
		{"received ack of an unknown command", `{"v":1,"type":"command_ack","data":{"command_id":"` + unknown + `","phase":"received"}}`, protocol.ErrCodeNotFound, "command_ack", "data.command_id", unknown},
		{"ack of another organisation's command", `{"v":1,"type":"command_ack","data":{"command_id":"` + other.ID.String() + `","phase":"completed"}}`, protocol.ErrCodeNotFound, "command_ack", "data.command_id", other.ID.String()},
		{"oversize frame", `{"v":1,"type":"heartbeat","data":{"versions":{"x":"` + strings.Repeat("a", 1<<20) + `"}}}`, protocol.ErrCodeTooLarge, "", "", ""},
	}
	for _, tt := range tests {
		ce := c.refusal([]byte(tt.frame))
		if ce.Code != tt.code || ce.Type != tt.typ || ce.Field != tt.fld || ce.CommandID != tt.commandID || ce.Retryable || ce.Message == "" {
			t.Errorf("%s: error frame %+v, want code %s, type %q, field %q, command %q, not retryable, with a message", tt.name, ce, tt.code, tt.typ, tt.fld, tt.commandID)
		}
	}
	// None of it closed the connection: what is valid still works.
	c.send(protocol.MsgHeartbeat, protocol.Heartbeat{QueueDepth: 1, Versions: map[string]string{"gateway": "2.0.1"}})
	c.quiet(500 * time.Millisecond)
	cmd := w.enq(w.a, protocol.CommandRestartAgent, 0)
	got, ok := c.command(5 * time.Second)
	if !ok || got.ID != cmd.ID.String() {
		t.Fatal("the socket no longer delivers commands after the refusals")
	}
	c.send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: got.ID, Phase: protocol.AckReceived})
	c.send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: got.ID, Phase: protocol.AckCompleted})
	// A repeated ack of its own finished command is normal, not refused.
	c.send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: got.ID, Phase: protocol.AckReceived})
	c.quiet(500 * time.Millisecond)
	if n := refusedTotal(t, r.srv.URL); n != float64(len(tests)) {
		t.Errorf("control_messages_refused_total = %v, want %d", n, len(tests))
	}
}

// refusedTotal sums control_messages_refused_total on a replica.
func refusedTotal(t *testing.T, base string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, m := range regexp.MustCompile(`(?m)^control_messages_refused_total\{[^}]*\} (\S+)$`).FindAllStringSubmatch(string(b), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		sum += v
	}
	return sum
}

func TestAHeartbeatTheDatabaseRefusesIsAnsweredNotDropped(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.replica(control.Options{}, commandqueue.Options{})
	c, _, err := r.dial(t, w.a.key)
	if err != nil {
		t.Fatal(err)
	}
	c.next(protocol.MsgWelcome, 5*time.Second)
	ctx := context.Background()
	hb := func(agents int) []byte {
		data, _ := json.Marshal(protocol.Heartbeat{ConnectedAgents: agents})
		raw, _ := json.Marshal(protocol.Envelope{V: protocol.ControlVersion, Type: protocol.MsgHeartbeat, Data: data})
		return raw
	}
	// A value the database refuses (a constraint the protocol's checks do
	// not know): permanent, never retryable.
	if _, err := w.admin.Exec(ctx, `ALTER TABLE gateway_status_snapshots ADD CONSTRAINT test_agents CHECK (connected_agents < 1000)`); err != nil {
		t.Fatal(err)
	}
	ce := c.refusal(hb(5000))
	if ce.Code != protocol.ErrCodeValidation || ce.Retryable || ce.Type != protocol.MsgHeartbeat || !strings.HasPrefix(ce.Field, "data") || !strings.Contains(ce.Message, "test_agents") {
		t.Errorf("refused by a constraint: %+v, want validation_failed, not retryable, naming the constraint", ce)
	}
	// The database cannot take it just now (here: the privilege is gone):
	// retryable.
	if _, err := w.admin.Exec(ctx, `REVOKE INSERT ON gateway_status_snapshots FROM staff_ingest`); err != nil {
		t.Fatal(err)
	}
	ce = c.refusal(hb(5))
	if ce.Code != protocol.ErrCodeUnavailable || !ce.Retryable || ce.Type != protocol.MsgHeartbeat {
		t.Errorf("database failure: %+v, want unavailable and retryable", ce)
	}
	if _, err := w.admin.Exec(ctx, `GRANT INSERT ON gateway_status_snapshots TO staff_ingest`); err != nil {
		t.Fatal(err)
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, hb(7)); err != nil {
		t.Fatal(err)
	}
	c.quiet(time.Second)
	var n int
	if err := w.admin.QueryRow(ctx, `SELECT count(*) FROM gateway_status_snapshots WHERE gateway_id = $1 AND connected_agents = 7`, w.a.id).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the heartbeat after recovery: %d stored, %v", n, err)
	}
}

func TestRESTAcknowledgementRefusals(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.replica(control.Options{}, commandqueue.Options{})
	cmd := w.enq(w.a, protocol.CommandRestartAgent, 0)
	ack := func(id, body string) (int, protocol.ErrorResponse) {
		req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/v2/gateway/commands/"+id+"/ack", strings.NewReader(body))
		req.Header.Set(protocol.HeaderAPIKey, w.a.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var er protocol.ErrorResponse
		_ = json.NewDecoder(resp.Body).Decode(&er)
		return resp.StatusCode, er
	}
	tests := []struct {
		name, id, body string
		code           int
		field          string
	}{
		{"NUL in the error", cmd.ID.String(), `{"phase":"failed","error":"x\u0000"}`, http.StatusUnprocessableEntity, "error"},
		{"NUL in the result", cmd.ID.String(), `{"phase":"completed","result":{"k":"\u0000"}}`, http.StatusUnprocessableEntity, "result"},
		{"received for a command never had", uuid.NewString(), `{"phase":"received"}`, http.StatusNotFound, "id"},
		{"received for its own command", cmd.ID.String(), `{"phase":"received"}`, http.StatusNoContent, ""},
	}
	for _, tt := range tests {
		if code, er := ack(tt.id, tt.body); code != tt.code || er.Field != tt.field {
			t.Errorf("%s: %d %+v, want %d naming %q", tt.name, code, er, tt.code, tt.field)
		}
	}
}
