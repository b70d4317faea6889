package collector

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

const testChecksum = "0f3c2b1a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"

// newControlFixture is a collector whose policy source the test sets.
func newControlFixture(t *testing.T, redeliver time.Duration) (*Collector, *httptest.Server, *atomic.Pointer[AgentPolicy]) {
	t.Helper()
	b, err := buffer.Open(context.Background(), buffer.Options{Config: buffer.Config{Path: filepath.Join(t.TempDir(), "buffer.sqlite"), MaxBytes: 1 << 30}, Logger: logtest.New(t), FSUsage: func(string) (float64, error) { return 0, nil }})
	if err != nil {
		t.Fatal(err)
	}
	var pol atomic.Pointer[AgentPolicy]
	c := New(b, Options{Policy: pol.Load, CommandRedeliver: redeliver, Logger: logtest.New(t), Auth: newAuthority(t, b, nil)})
	mux := http.NewServeMux()
	c.Routes(mux)
	srv := httptest.NewServer(mux)
	servers.Store(srv.URL, newCredentials(c))
	t.Cleanup(func() { servers.Delete(srv.URL) })
	t.Cleanup(func() { c.AgentCommands().Close(); srv.Close(); b.Close() })
	return c, srv, &pol
}

func do(t *testing.T, method, url string, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	authorize(t, req, hdr)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestAgentPolicyETag(t *testing.T) {
	_, srv, pol := newControlFixture(t, 0)
	url := srv.URL + protocol.PathAgentPolicy
	if resp, body := do(t, http.MethodGet, url, "", nil); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "no policy") {
		t.Fatalf("before any policy: %d %s, want 404", resp.StatusCode, body)
	}
	pol.Store(&AgentPolicy{PolicyID: 7, Version: "1.2.0", Checksum: testChecksum, Content: json.RawMessage(`{"screenshots":{"enabled":true}}`)})
	etag := `"` + testChecksum + `"`
	tests := []struct {
		name        string
		ifNoneMatch string
		want        int
	}{
		{"no validator", "", http.StatusOK},
		{"matching", etag, http.StatusNotModified},
		{"weak form matches", "W/" + etag, http.StatusNotModified},
		{"one of a list", `"other", ` + etag, http.StatusNotModified},
		{"star", "*", http.StatusNotModified},
		{"stale checksum", `"` + strings.Repeat("a", 64) + `"`, http.StatusOK},
		{"unquoted is not the ETag", testChecksum, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.ifNoneMatch != "" {
				hdr["If-None-Match"] = tt.ifNoneMatch
			}
			resp, body := do(t, http.MethodGet, url, "", hdr)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.want, body)
			}
			if resp.Header.Get("ETag") != etag {
				t.Fatalf("ETag %q, want %q", resp.Header.Get("ETag"), etag)
			}
			if tt.want == http.StatusNotModified {
				if len(body) != 0 {
					t.Fatalf("304 with a body: %s", body)
				}
				return
			}
			var doc protocol.PolicyDocument
			if err := json.Unmarshal(body, &doc); err != nil || doc.Version != "1.2.0" || doc.Checksum != testChecksum || doc.PolicyID != 7 ||
				string(doc.Content) != `{"screenshots":{"enabled":true}}` {
				t.Fatalf("document %+v (%v)", doc, err)
			}
		})
	}
}

func TestAgentCommandsLongPollAndAck(t *testing.T) {
	c, srv, pol := newControlFixture(t, time.Hour)
	pol.Store(&AgentPolicy{Version: "1.0.0", Checksum: testChecksum})
	poll := func(uid, wait string) (protocol.AgentCommandList, time.Duration) {
		t.Helper()
		start := time.Now()
		resp, body := do(t, http.MethodGet, srv.URL+"/v1/agents/"+uid+"/commands?wait="+wait, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("poll: %d %s", resp.StatusCode, body)
		}
		var l protocol.AgentCommandList
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		return l, time.Since(start)
	}

	// Nothing queued: the poll waits for the whole wait and answers empty,
	// with the current policy checksum.
	l, took := poll("agent-1", "300ms")
	if len(l.Commands) != 0 || l.PolicyChecksum != testChecksum || took < 250*time.Millisecond {
		t.Fatalf("empty poll: %+v after %v", l, took)
	}
	if _, ok := c.Agents().Lookup("agent-1"); !ok {
		t.Fatal("a polling agent is not in the registry")
	}

	// A command queued while the agent waits wakes the poll at once.
	acks := make(chan (<-chan protocol.AgentCommandAck), 1)
	ids := make(chan string, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		id, done, err := c.AgentCommands().Enqueue("agent-1", protocol.AgentCmdRestart, protocol.AgentRestart{Mode: protocol.RestartGraceful})
		if err != nil {
			t.Error(err)
		}
		ids <- id
		acks <- done
	}()
	l, took = poll("agent-1", "30s")
	id := <-ids
	if len(l.Commands) != 1 || l.Commands[0].ID != id || l.Commands[0].Type != protocol.AgentCmdRestart || took > 10*time.Second {
		t.Fatalf("woken poll: %+v after %v", l, took)
	}
	var rs protocol.AgentRestart
	if err := json.Unmarshal(l.Commands[0].Payload, &rs); err != nil || rs.Mode != protocol.RestartGraceful {
		t.Fatalf("payload %s", l.Commands[0].Payload)
	}
	// Delivered and not acknowledged: not delivered again before the
	// redelivery interval; another agent sees nothing.
	if l, _ := poll("agent-1", "0s"); len(l.Commands) != 0 {
		t.Fatalf("redelivered at once: %+v", l)
	}
	if l, _ := poll("agent-2", "0"); len(l.Commands) != 0 {
		t.Fatalf("another agent got it: %+v", l)
	}

	// Acknowledgement: 204, handed to the waiter, policy version recorded.
	ackURL := srv.URL + "/v1/agents/agent-1/commands/" + id + "/ack"
	jsonHdr := map[string]string{"Content-Type": "application/json"}
	if resp, body := do(t, http.MethodPost, ackURL, `{"status":"completed","policy_version":"1.0.0"}`, jsonHdr); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("ack: %d %s", resp.StatusCode, body)
	}
	select {
	case a := <-<-acks:
		if a.Status != protocol.AckCompleted || a.PolicyVersion != "1.0.0" {
			t.Fatalf("ack %+v", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter got no acknowledgement")
	}
	if info, _ := c.Agents().Lookup("agent-1"); info.PolicyVersion != "1.0.0" {
		t.Fatalf("policy version not kept: %+v", info)
	}
	if n := c.AgentCommands().Pending(); n != 0 {
		t.Fatalf("%d commands still pending", n)
	}
	// A second acknowledgement of the same id: 404 naming the id.
	resp, body := do(t, http.MethodPost, ackURL, `{"status":"completed"}`, jsonHdr)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"field":"id"`) {
		t.Fatalf("repeated ack: %d %s", resp.StatusCode, body)
	}
}

func TestAgentCommandRedelivery(t *testing.T) {
	c, srv, _ := newControlFixture(t, 200*time.Millisecond)
	id, _, err := c.AgentCommands().Enqueue("a", protocol.AgentCmdRestart, protocol.AgentRestart{Mode: protocol.RestartForced})
	if err != nil {
		t.Fatal(err)
	}
	get := func() []protocol.AgentCommand {
		_, body := do(t, http.MethodGet, srv.URL+"/v1/agents/a/commands", "", nil)
		var l protocol.AgentCommandList
		_ = json.Unmarshal(body, &l)
		return l.Commands
	}
	if l := get(); len(l) != 1 || l[0].ID != id {
		t.Fatalf("first delivery %+v", l)
	}
	if l := get(); len(l) != 0 {
		t.Fatalf("redelivered too soon: %+v", l)
	}
	time.Sleep(300 * time.Millisecond)
	if l := get(); len(l) != 1 || l[0].ID != id {
		t.Fatalf("not redelivered after the interval: %+v", l)
	}
	// Cancelled by the waiter: gone.
	c.AgentCommands().Cancel("a", id)
	time.Sleep(300 * time.Millisecond)
	if l := get(); len(l) != 0 {
		t.Fatalf("cancelled command delivered: %+v", l)
	}
	// The queue is bounded per agent.
	for i := 0; i < maxCommandsPerAgent; i++ {
		if _, _, err := c.AgentCommands().Enqueue("b", protocol.AgentCmdRestart, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.AgentCommands().Enqueue("b", protocol.AgentCmdRestart, nil); err != ErrAgentQueueFull {
		t.Fatalf("over the bound: %v", err)
	}
}

func TestAgentControlValidation(t *testing.T) {
	c, srv, _ := newControlFixture(t, 0)
	id, _, _ := c.AgentCommands().Enqueue("agent-1", protocol.AgentCmdRestart, nil)
	long := strings.Repeat("x", 256)
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		field                           string
	}{
		{"wait not a duration", "GET", "/v1/agents/agent-1/commands?wait=soon", "", "", 400, "wait"},
		{"wait too long", "GET", "/v1/agents/agent-1/commands?wait=10m", "", "", 400, "wait"},
		{"wait negative", "GET", "/v1/agents/agent-1/commands?wait=-1s", "", "", 400, "wait"},
		{"agent uid too long", "GET", "/v1/agents/" + long + "/commands", "", "", 400, "agent_uid"},
		{"ack id not a uuid", "POST", "/v1/agents/agent-1/commands/42/ack", "application/json", `{"status":"completed"}`, 400, "id"},
		{"ack agent uid too long", "POST", "/v1/agents/" + long + "/commands/" + id + "/ack", "application/json", `{"status":"completed"}`, 400, "agent_uid"},
		{"ack bad status", "POST", "/v1/agents/agent-1/commands/" + id + "/ack", "application/json", `{"status":"done"}`, 400, "status"},
		{"ack missing status", "POST", "/v1/agents/agent-1/commands/" + id + "/ack", "application/json", `{}`, 400, "status"},
		{"failed without error", "POST", "/v1/agents/agent-1/commands/" + id + "/ack", "application/json", `{"status":"failed"}`, 400, "error"},
		{"policy version wrong type", "POST", "/v1/agents/agent-1/commands/" + id + "/ack", "application/json", `{"status":"completed","policy_version":3}`, 400, "policy_version"},
		{"policy version too long", "POST", "/v1/agents/agent-1/commands/" + id + "/ack", "application/json", `{"status":"completed","policy_version":"` + long + `"}`, 400, "policy_version"},
		{"ack wrong content type", "POST", "/v1/agents/agent-1/commands/" + id + "/ack", "text/plain", `{"status":"completed"}`, 415, "Content-Type"},
		{"ack of another agent's command", "POST", "/v1/agents/agent-2/commands/" + id + "/ack", "application/json", `{"status":"completed"}`, 404, "id"},
		{"ack of an unknown command", "POST", "/v1/agents/agent-1/commands/0199aaaa-0000-7000-8000-000000000001/ack", "application/json", `{"status":"completed"}`, 404, "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.ctype != "" {
				hdr["Content-Type"] = tt.ctype
			}
			resp, body := do(t, tt.method, srv.URL+tt.path, tt.body, hdr)
			var e protocol.ErrorResponse
			_ = json.Unmarshal(body, &e)
			if resp.StatusCode != tt.status || e.Field != tt.field {
				t.Fatalf("%d %s, want %d naming %s", resp.StatusCode, body, tt.status, tt.field)
			}
		})
	}
	// None of the refusals consumed the command.
	if n := c.AgentCommands().Pending(); n != 1 {
		t.Fatalf("pending %d, want 1", n)
	}
}

func TestAgentLongPollEndsOnClose(t *testing.T) {
	c, srv, _ := newControlFixture(t, 0)
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		resp, err := http.Get(srv.URL + "/v1/agents/x/commands?wait=60s")
		if err == nil {
			resp.Body.Close()
		}
		done <- time.Since(start)
	}()
	time.Sleep(200 * time.Millisecond)
	c.AgentCommands().Close()
	select {
	case d := <-done:
		if d > 10*time.Second {
			t.Fatalf("poll ended after %v", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a long-poll outlived Close")
	}
}
