package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

type fixture struct {
	buf   *buffer.Buffer
	c     *Collector
	srv   *httptest.Server
	creds *credentials
}

func newFixture(t *testing.T, maxBytes int64) *fixture {
	t.Helper()
	if maxBytes == 0 {
		maxBytes = 1 << 30
	}
	b, err := buffer.Open(context.Background(), buffer.Options{Config: buffer.Config{Path: filepath.Join(t.TempDir(), "buffer.sqlite"), MaxBytes: maxBytes}, Logger: logtest.New(t), FSUsage: func(string) (float64, error) { return 0, nil }, MaintenanceInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := New(b, Options{Config: Config{MaxBodyBytes: 64 << 10, MaxBatchEvents: 50, MaxScreenshotBytes: 32 << 10}, GatewayID: "gw", Logger: logtest.New(t),
		Auth: newAuthority(t, b, nil)})
	mux := http.NewServeMux()
	c.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); b.Close() })
	return &fixture{buf: b, c: c, srv: srv, creds: newCredentials(c)}
}

func validEvent() map[string]any {
	return map[string]any{"type": "active_window", "user_sid": "S-1-5-21-1", "datetime": time.Now().UTC().Format(time.RFC3339Nano),
		"duration_seconds": 12, "process_name": "excel.exe", "window_title": "Budget.xlsx"}
}

func batchBody(events ...map[string]any) map[string]any {
	list := make([]any, len(events))
	for i, e := range events {
		list[i] = e
	}
	return map[string]any{"agent_uid": "agent-1", "computer_name": "PC-1", "events": list}
}

func with(k string, v any) map[string]any {
	e := validEvent()
	if v == nil {
		delete(e, k)
	} else {
		e[k] = v
	}
	return e
}

func (f *fixture) post(t *testing.T, path, ctype string, body []byte, hdr map[string]string) (*http.Response, protocol.ErrorResponse, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if _, set := hdr[protocol.HeaderAuthorization]; !set {
		req.Header.Set(protocol.HeaderAuthorization, f.creds.bearer(t, "agent-1"))
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var er protocol.ErrorResponse
	_ = json.Unmarshal(raw, &er)
	return resp, er, raw
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func TestBadEventRequestsAreRefusedWhole(t *testing.T) {
	f := newFixture(t, 0)
	many := make([]map[string]any, 51)
	for i := range many {
		many[i] = validEvent()
	}
	huge := with("window_title", strings.Repeat("x", 70<<10))
	bomb := gz(bytes.Repeat([]byte(" "), 200<<10))
	cases := []struct {
		name   string
		ctype  string
		body   []byte
		hdr    map[string]string
		status int
		field  string
	}{
		{"wrong content type", "text/plain", mustJSON(batchBody(validEvent())), nil, 415, "Content-Type"},
		{"malformed json", "application/json", []byte(`{"events":[{"type":`), nil, 400, ""},
		{"not json", "application/json", []byte(`hello`), nil, 400, ""},
		{"empty body", "application/json", nil, nil, 400, ""},
		{"trailing garbage", "application/json", append(mustJSON(batchBody(validEvent())), []byte(`{}`)...), nil, 400, ""},
		{"events not an array", "application/json", []byte(`{"agent_uid":"a","computer_name":"b","events":{}}`), nil, 400, "events"},
		{"duration is a string", "application/json", mustJSON(batchBody(validEvent(), with("duration_seconds", "12"))), nil, 400, "events[1].duration_seconds"},
		{"agent uid is a number", "application/json", []byte(`{"agent_uid":5,"computer_name":"b","events":[]}`), nil, 400, "agent_uid"},
		{"bad datetime", "application/json", mustJSON(batchBody(with("datetime", "yesterday"))), nil, 400, ""},
		{"no events", "application/json", mustJSON(batchBody()), nil, 400, "events"},
		{"missing user sid", "application/json", mustJSON(batchBody(validEvent(), with("user_sid", nil))), nil, 400, "events[1].user_sid"},
		{"missing datetime", "application/json", mustJSON(batchBody(with("datetime", nil))), nil, 400, "events[0].datetime"},
		{"unknown type", "application/json", mustJSON(batchBody(with("type", "keylog"))), nil, 400, "events[0].type"},
		{"screenshot in events", "application/json", mustJSON(batchBody(with("type", "screenshot"))), nil, 400, "events[0].type"},
		{"bad event id", "application/json", mustJSON(batchBody(with("event_id", "42"))), nil, 400, "events[0].event_id"},
		{"seq from agent", "application/json", mustJSON(batchBody(with("seq", 7))), nil, 400, "events[0].seq"},
		{"negative duration", "application/json", mustJSON(batchBody(with("duration_seconds", -1))), nil, 400, "events[0].duration_seconds"},
		{"missing process", "application/json", mustJSON(batchBody(with("process_name", nil))), nil, 400, "events[0].process_name"},
		{"site without url", "application/json", mustJSON(batchBody(with("type", "visited_site"))), nil, 400, "events[0].url"},
		{"bad session type", "application/json", mustJSON(batchBody(with("type", "user_session"))), nil, 400, "events[0].session_type"},
		{"too many events", "application/json", mustJSON(batchBody(many...)), nil, 413, "events"},
		{"body too large", "application/json", mustJSON(batchBody(huge)), nil, 413, ""},
		{"gzip bomb", "application/json", bomb, map[string]string{"Content-Encoding": "gzip"}, 413, ""},
		{"bad gzip", "application/json", []byte("not gzip"), map[string]string{"Content-Encoding": "gzip"}, 400, "Content-Encoding"},
		{"unknown encoding", "application/json", mustJSON(batchBody(validEvent())), map[string]string{"Content-Encoding": "br"}, 415, "Content-Encoding"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, er, raw := f.post(t, protocol.PathAgentEvents, tc.ctype, tc.body, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, raw)
			}
			if tc.field != "" && er.Field != tc.field {
				t.Fatalf("field %q, want %q: %s", er.Field, tc.field, raw)
			}
			if er.Error == "" || er.Message == "" {
				t.Fatalf("error body lacks code or message: %s", raw)
			}
		})
	}
	for _, s := range buffer.Streams() {
		if rows, _ := f.buf.Unclaimed(s); rows != 0 {
			t.Fatalf("%d rows written by refused requests", rows)
		}
	}
}

func TestAcceptedEventsAreCommittedWithIDsAndSequence(t *testing.T) {
	f := newFixture(t, 0)
	given := uuid.Must(uuid.NewV7()).String()
	body := batchBody(with("event_id", strings.ToUpper(given)), validEvent(),
		map[string]any{"type": "visited_site", "user_sid": "S-1", "datetime": time.Now().UTC(), "url": "https://example.org", "duration_seconds": 3},
		map[string]any{"type": "user_session", "user_sid": "S-1", "datetime": time.Now().UTC(), "session_type": "lock"})
	resp, _, raw := f.post(t, protocol.PathAgentEvents, "application/json; charset=utf-8", gz(mustJSON(body)), map[string]string{"Content-Encoding": "gzip"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	var ack protocol.EventBatchResponse
	if err := json.Unmarshal(raw, &ack); err != nil {
		t.Fatal(err)
	}
	if ack.Accepted != 4 || ack.Events[0].EventID != given || ack.Events[0].Seq != 1 || ack.Events[3].Seq != 4 {
		t.Fatalf("ack %+v", ack)
	}
	if v, err := uuid.Parse(ack.Events[1].EventID); err != nil || v.Version() != 7 {
		t.Fatalf("assigned id %q is not a UUIDv7", ack.Events[1].EventID)
	}
	if rows, _ := f.buf.Unclaimed(buffer.StreamLogs); rows != 4 {
		t.Fatalf("%d rows, want 4", rows)
	}
	// The same batch again: duplicates by agent-given id are not re-added.
	resp, _, raw = f.post(t, protocol.PathAgentEvents, "application/json", mustJSON(batchBody(with("event_id", given))), nil)
	json.Unmarshal(raw, &ack)
	if resp.StatusCode != 200 || ack.Duplicates != 1 || ack.Accepted != 0 {
		t.Fatalf("resend: %d %s", resp.StatusCode, raw)
	}
	bt, err := f.buf.Claim(context.Background(), buffer.StreamLogs, 10, 1<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	var ev protocol.Event
	if err := json.Unmarshal(bt.Events[0].Payload, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.AgentUID != "agent-1" || ev.ComputerName != "PC-1" || ev.ReceivedAt == nil || ev.EventID != given {
		t.Fatalf("stored event %+v", ev)
	}
	if f.c.Agents().Connected() != 1 {
		t.Fatal("agent not counted as connected")
	}
}

func screenshotBody(t *testing.T, meta map[string]any, img []byte, extra bool) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if meta != nil {
		w, _ := mw.CreateFormField(protocol.CollectorMetadataPart)
		w.Write(mustJSON(meta))
	}
	if img != nil {
		w, _ := mw.CreateFormFile(protocol.CollectorImagePart, "shot.png")
		w.Write(img)
	}
	if extra {
		w, _ := mw.CreateFormField("more")
		w.Write([]byte("x"))
	}
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

func shotMeta(img []byte) map[string]any {
	sum := sha256.Sum256(img)
	return map[string]any{"type": "screenshot", "agent_uid": "agent-1", "computer_name": "PC-1", "user_sid": "S-1",
		"datetime": time.Now().UTC(), "screenshot": map[string]any{"sha256": hex.EncodeToString(sum[:]), "size": len(img), "content_type": "image/png"}}
}

func TestScreenshotUpload(t *testing.T) {
	f := newFixture(t, 0)
	img := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 1000)
	meta := shotMeta(img)
	wrongSum := shotMeta(img)
	wrongSum["screenshot"].(map[string]any)["sha256"] = strings.Repeat("0", 64)
	wrongSize := shotMeta(img)
	wrongSize["screenshot"].(map[string]any)["size"] = 5
	big := bytes.Repeat([]byte{1}, 40<<10)
	notShot := shotMeta(img)
	notShot["type"] = "active_window"
	noMeta := shotMeta(img)
	delete(noMeta, "screenshot")
	cases := []struct {
		name   string
		meta   map[string]any
		img    []byte
		extra  bool
		status int
		field  string
	}{
		{"sha mismatch", wrongSum, img, false, 400, "screenshot.sha256"},
		{"size mismatch", wrongSize, img, false, 400, "screenshot.size"},
		{"image too large", shotMeta(big), big, false, 413, ""},
		{"no image", meta, nil, false, 400, "image"},
		{"no metadata", nil, img, false, 400, "metadata"},
		{"not a screenshot", notShot, img, false, 400, "type"},
		{"missing screenshot metadata", noMeta, img, false, 400, "screenshot"},
		{"extra part", meta, img, true, 400, "(body)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, ct := screenshotBody(t, tc.meta, tc.img, tc.extra)
			resp, er, raw := f.post(t, protocol.PathAgentScreenshot, ct, body, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, raw)
			}
			if tc.field != "" && er.Field != tc.field {
				t.Fatalf("field %q, want %q: %s", er.Field, tc.field, raw)
			}
		})
	}
	resp, _, _ := f.post(t, protocol.PathAgentScreenshot, "application/json", []byte("{}"), nil)
	if resp.StatusCode != 415 {
		t.Fatalf("json to screenshot endpoint: %d", resp.StatusCode)
	}
	if rows, _ := f.buf.Unclaimed(buffer.StreamScreenshots); rows != 0 {
		t.Fatalf("%d rows written by refused uploads", rows)
	}
	if entries, _ := os.ReadDir(filepath.Join(f.buf.Dir(), "screenshots")); len(entries) != 0 {
		t.Fatalf("%d files left by refused uploads", len(entries))
	}
	body, ct := screenshotBody(t, meta, img, false)
	resp, _, raw := f.post(t, protocol.PathAgentScreenshot, ct, body, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("valid upload: %d %s", resp.StatusCode, raw)
	}
	var ack protocol.EventBatchResponse
	json.Unmarshal(raw, &ack)
	got, err := os.ReadFile(f.buf.ScreenshotPath(ack.Events[0].EventID))
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("stored image differs: %v", err)
	}
}

func TestRegisterAndHeartbeat(t *testing.T) {
	f := newFixture(t, 0)
	// Without agent_uid the registration is the credential's agent's.
	resp, _, raw := f.post(t, protocol.PathAgentRegister, "application/json", []byte(`{"computer_name":"PC-0"}`), nil)
	if info, ok := f.c.Agents().Lookup("agent-1"); resp.StatusCode != 200 || !ok || info.ComputerName != "PC-0" {
		t.Fatalf("register without uid: %d %s %+v", resp.StatusCode, raw, info)
	}
	auth := func(uid string) map[string]string {
		return map[string]string{protocol.HeaderAuthorization: f.creds.bearer(t, uid)}
	}
	resp, _, raw = f.post(t, protocol.PathAgentRegister, "application/json", []byte(`{"agent_uid":"a1","computer_name":"PC","agent_version":"2.0.1"}`), auth("a1"))
	if resp.StatusCode != 200 {
		t.Fatalf("register: %d %s", resp.StatusCode, raw)
	}
	var rr protocol.AgentRegistrationResponse
	json.Unmarshal(raw, &rr)
	if rr.HeartbeatIntervalSeconds != 30 || rr.BufferLevel != "normal" || rr.GatewayID != "gw" {
		t.Fatalf("response %+v", rr)
	}
	resp, _, _ = f.post(t, protocol.PathAgentHeartbeat, "application/json", []byte(`{"agent_uid":"a2","computer_name":"PC2"}`), auth("a2"))
	if resp.StatusCode != 200 || f.c.Agents().Connected() != 3 {
		t.Fatalf("heartbeat: %d, connected %d", resp.StatusCode, f.c.Agents().Connected())
	}
	if l := f.c.Agents().List(10); len(l) != 3 || l[0].AgentUID != "a2" {
		t.Fatalf("list %+v", l)
	}
}

func TestBackPressureAnswers503WithRetryAfter(t *testing.T) {
	f := newFixture(t, 60_000)
	img := bytes.Repeat([]byte{7}, 20_000)
	sent := 0
	var resp *http.Response
	var raw []byte
	for i := 0; i < 1000; i++ {
		resp, _, raw = f.post(t, protocol.PathAgentEvents, "application/json", mustJSON(batchBody(validEvent(), validEvent())), nil)
		if resp.StatusCode != 200 {
			break
		}
		sent++
		if f.buf.Level() == buffer.LevelWarning {
			body, ct := screenshotBody(t, shotMeta(img), img, false)
			sr, er, sraw := f.post(t, protocol.PathAgentScreenshot, ct, body, nil)
			if sr.StatusCode != 503 || er.Error != protocol.ErrCodeShedding || sr.Header.Get("Retry-After") == "" {
				t.Fatalf("screenshot at warning (level %v usage %.3f): %d %s", f.buf.Level(), f.buf.Usage(), sr.StatusCode, sraw)
			}
		}
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "5" {
		t.Fatalf("after %d batches: %d %s", sent, resp.StatusCode, raw)
	}
	var er protocol.ErrorResponse
	json.Unmarshal(raw, &er)
	if er.Error != protocol.ErrCodeBufferFull {
		t.Fatalf("error %+v", er)
	}
	if f.buf.Usage() > 1.0 {
		t.Fatalf("usage %.2f above the limit", f.buf.Usage())
	}
	_ = fmt.Sprint()
}
