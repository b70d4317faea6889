package control

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// syncBuffer is a log buffer safe for the client's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestErrorFramesAreLoggedWithoutDisconnecting(t *testing.T) {
	t.Parallel()
	var sessions atomic.Int32
	acked := make(chan protocol.CommandAck, 10)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		sessions.Add(1)
		send := func(typ string, v any) {
			data, _ := json.Marshal(v)
			_ = ws.WriteJSON(protocol.Envelope{V: protocol.ControlVersion, Type: typ, Data: data})
		}
		send(protocol.MsgError, protocol.ControlError{Code: protocol.ErrCodeValidation, Type: protocol.MsgHeartbeat, Field: "data.versions.gateway", Message: "is longer than 50 characters"})
		send(protocol.MsgError, protocol.ControlError{Code: protocol.ErrCodeUnavailable, Type: protocol.MsgHeartbeat, Retryable: true, Message: "could not be recorded just now"})
		_ = ws.WriteJSON(protocol.Envelope{V: protocol.ControlVersion, Type: protocol.MsgError, Data: json.RawMessage(`"from an older cloud"`)})
		send(protocol.MsgCommand, protocol.Command{ID: "11111111-1111-1111-1111-111111111111", Type: "restart_agent", Payload: json.RawMessage(`{}`)})
		for {
			var env protocol.Envelope
			if err := ws.ReadJSON(&env); err != nil {
				return
			}
			if env.Type == protocol.MsgCommandAck {
				var a protocol.CommandAck
				_ = json.Unmarshal(env.Data, &a)
				acked <- a
			}
		}
	}))
	defer srv.Close()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(io.MultiWriter(logs, logtest.Writer(t, "control client log")), nil))
	c := New(Options{SocketURL: "ws" + strings.TrimPrefix(srv.URL, "http"), BaseURL: srv.URL, APIKey: func() string { return "k" },
		Heartbeat: func() protocol.Heartbeat { return protocol.Heartbeat{} },
		Execute: func(context.Context, protocol.Command) (json.RawMessage, error) {
			return json.RawMessage(`{"ok":true}`), nil
		},
		Logger: logger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for {
		select {
		case a := <-acked:
			if a.Phase != protocol.AckCompleted {
				continue
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the command after the error frames was not completed; log:\n%s", logs.String())
		}
		break
	}
	if n := sessions.Load(); n != 1 || !c.Connected() {
		t.Fatalf("%d sessions, connected=%v: an error frame must not end the session", n, c.Connected())
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && strings.HasPrefix(m["msg"].(string), "control: the cloud") {
			lines = append(lines, m)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("%d refusal lines, want 3; log:\n%s", len(lines), logs.String())
	}
	if l := lines[0]; l["level"] != "ERROR" || l["code"] != protocol.ErrCodeValidation || l["field"] != "data.versions.gateway" || l["refused_type"] != "heartbeat" || l["retryable"] != false {
		t.Errorf("permanent refusal logged as %v", l)
	}
	if l := lines[1]; l["level"] != "WARN" || l["code"] != protocol.ErrCodeUnavailable || l["retryable"] != true {
		t.Errorf("retryable refusal logged as %v", l)
	}
	if l := lines[2]; l["level"] != "WARN" || l["error_frame"] != `"from an older cloud"` {
		t.Errorf("undecodable error frame logged as %v", l)
	}
}

// TestTheSocketDialsOverTLSSharedWithTheUplink: the gateway gives the
// control client the uplink transport's TLS configuration, to which
// net/http adds "h2" on first use; the WebSocket must still connect.
func TestTheSocketDialsOverTLSSharedWithTheUplink(t *testing.T) {
	t.Parallel()
	up := websocket.Upgrader{}
	connected := make(chan struct{}, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != protocol.PathGatewaySocket {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		connected <- struct{}{}
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	shared := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	shared.NextProtos = nil
	uplink := &http.Transport{TLSClientConfig: shared, ForceAttemptHTTP2: true}
	defer uplink.CloseIdleConnections()
	resp, err := (&http.Client{Transport: uplink}).Get(srv.URL + "/v2/gateway/ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("the uplink spoke %s; the test needs HTTP/2 on the shared configuration", resp.Proto)
	}
	c := New(Options{SocketURL: "wss" + strings.TrimPrefix(srv.URL, "https") + protocol.PathGatewaySocket, BaseURL: srv.URL,
		APIKey: func() string { return "k" }, TLS: shared, Config: Config{BackoffInitial: 10 * time.Millisecond},
		Heartbeat: func() protocol.Heartbeat { return protocol.Heartbeat{} },
		Execute:   func(context.Context, protocol.Command) (json.RawMessage, error) { return nil, nil },
		Logger:    logtest.New(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-connected:
	case <-time.After(5 * time.Second):
		t.Fatalf("no WebSocket over the TLS configuration shared with an HTTP/2 transport (NextProtos %v)", shared.NextProtos)
	}
}
