package collector

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// newRegistryFixture is newFixture with the buffer's and the collector's
// metrics in a real Prometheus registry.
func newRegistryFixture(t *testing.T, maxBytes int64) (*fixture, *prometheus.Registry) {
	t.Helper()
	if maxBytes == 0 {
		maxBytes = 1 << 30
	}
	reg := prometheus.NewRegistry()
	b, err := buffer.Open(context.Background(), buffer.Options{Config: buffer.Config{Path: filepath.Join(t.TempDir(), "buffer.sqlite"), MaxBytes: maxBytes}, FSUsage: func(string) (float64, error) { return 0, nil }, MaintenanceInterval: 10 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	c := New(b, Options{Config: Config{MaxBodyBytes: 64 << 10, MaxBatchEvents: 50, MaxScreenshotBytes: 32 << 10}, GatewayID: "gw", Registerer: reg,
		Auth: newAuthority(t, b, reg)})
	mux := http.NewServeMux()
	c.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); b.Close() })
	return &fixture{buf: b, c: c, srv: srv, creds: newCredentials(c)}, reg
}

// counters reads every series of a counter family from the registry, keyed
// by the value of label.
func counters(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					key = l.GetValue()
				}
			}
			out[key] += m.GetCounter().GetValue()
		}
	}
	return out
}

func TestGzipRequestsAreNotCountedTooLarge(t *testing.T) {
	f, reg := newRegistryFixture(t, 0)
	for i := range 5 {
		resp, _, raw := f.post(t, protocol.PathAgentEvents, "application/json", gz(mustJSON(batchBody(validEvent(), validEvent()))),
			map[string]string{"Content-Encoding": "gzip"})
		if resp.StatusCode != 200 {
			t.Fatalf("gzip request %d: %d %s", i, resp.StatusCode, raw)
		}
	}
	if got := counters(t, reg, "gateway_events_rejected_total", "reason"); len(got) != 0 {
		t.Fatalf("accepted gzip requests counted as rejected: %v", got)
	}
	if got := counters(t, reg, "gateway_requests_rejected_total", "reason"); len(got) != 0 {
		t.Fatalf("accepted gzip requests counted as rejected requests: %v", got)
	}
	if got := counters(t, reg, "gateway_events_accepted_total", "type"); got[protocol.TypeActiveWindow] != 10 {
		t.Fatalf("accepted %v, want 10 active_window", got)
	}
	// A gzip bomb (decodes beyond the body limit) is still refused and counted once.
	resp, _, raw := f.post(t, protocol.PathAgentEvents, "application/json", gz(bytes.Repeat([]byte(" "), 200<<10)),
		map[string]string{"Content-Encoding": "gzip"})
	if resp.StatusCode != 413 {
		t.Fatalf("gzip bomb: %d %s", resp.StatusCode, raw)
	}
	if got := counters(t, reg, "gateway_requests_rejected_total", "reason"); got["too_large"] != 1 || len(got) != 1 {
		t.Fatalf("requests rejected %v, want too_large 1", got)
	}
	if got := counters(t, reg, "gateway_events_rejected_total", "reason"); len(got) != 0 {
		t.Fatalf("events of an unparseable body counted: %v", got)
	}
}

func TestRejectedCountersCountEvents(t *testing.T) {
	hundred := func(bad map[string]any) []map[string]any {
		evs := make([]map[string]any, 40)
		for i := range evs {
			evs[i] = validEvent()
		}
		if bad != nil {
			evs[17] = bad
		}
		return evs
	}
	tests := []struct {
		name       string
		body       []byte
		ctype      string
		status     int
		reason     string
		wantEvents float64 // 0: none counted in gateway_events_rejected_total
	}{
		{"one bad event refuses the batch", mustJSON(batchBody(hundred(with("user_sid", "S-1\x00"))...)), "application/json", 400, "validation", 40},
		{"too many events", mustJSON(batchBody(append(hundred(nil), hundred(nil)[:11]...)...)), "application/json", 413, "too_large", 51},
		{"unparseable body", []byte(`{"events":[{`), "application/json", 400, "malformed", 0},
		{"wrong content type", mustJSON(batchBody(validEvent())), "text/plain", 415, "unsupported_media_type", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, reg := newRegistryFixture(t, 0)
			resp, _, raw := f.post(t, protocol.PathAgentEvents, tt.ctype, tt.body, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, raw, tt.status)
			}
			req := counters(t, reg, "gateway_requests_rejected_total", "reason")
			if req[tt.reason] != 1 || len(req) != 1 {
				t.Fatalf("requests rejected %v, want %s 1", req, tt.reason)
			}
			ev := counters(t, reg, "gateway_events_rejected_total", "reason")
			if ev[tt.reason] != tt.wantEvents {
				t.Fatalf("events rejected %v, want %s %v", ev, tt.reason, tt.wantEvents)
			}
		})
	}
}

func TestBackPressureCountsRefusedEvents(t *testing.T) {
	f, reg := newRegistryFixture(t, 60_000)
	sent := 0
	for f.buf.Level() < buffer.LevelCritical {
		resp, _, raw := f.post(t, protocol.PathAgentEvents, "application/json", mustJSON(batchBody(validEvent(), validEvent())), nil)
		if resp.StatusCode != 200 {
			// The buffer itself refused (it counts the events).
			t.Logf("refused by Append after %d: %s", sent, raw)
			break
		}
		if sent++; sent > 2000 {
			t.Fatal("never reached the critical level")
		}
	}
	before := counters(t, reg, "gateway_events_rejected_total", "reason")["buffer_full"]
	beforeReq := counters(t, reg, "gateway_requests_rejected_total", "reason")["buffer_full"]
	evs := make([]map[string]any, 7)
	for i := range evs {
		evs[i] = validEvent()
	}
	resp, er, raw := f.post(t, protocol.PathAgentEvents, "application/json", mustJSON(batchBody(evs...)), nil)
	if resp.StatusCode != 503 || er.Error != protocol.ErrCodeBufferFull {
		t.Fatalf("at critical: %d %s", resp.StatusCode, raw)
	}
	if got := counters(t, reg, "gateway_events_rejected_total", "reason")["buffer_full"] - before; got != 7 {
		t.Fatalf("a refused 7-event batch added %v to gateway_events_rejected_total{reason=buffer_full}, want 7", got)
	}
	if got := counters(t, reg, "gateway_requests_rejected_total", "reason")["buffer_full"] - beforeReq; got != 1 {
		t.Fatalf("requests rejected +%v, want +1", got)
	}
	// A screenshot refused at the door is one event.
	img := bytes.Repeat([]byte{1}, 100)
	body, ct := screenshotBody(t, shotMeta(img), img, false)
	before = counters(t, reg, "gateway_events_rejected_total", "reason")["buffer_full"]
	if resp, _, raw := f.post(t, protocol.PathAgentScreenshot, ct, body, nil); resp.StatusCode != 503 {
		t.Fatalf("screenshot at critical: %d %s", resp.StatusCode, raw)
	}
	if got := counters(t, reg, "gateway_events_rejected_total", "reason")["buffer_full"] - before; got != 1 {
		t.Fatalf("a refused screenshot added %v events, want 1", got)
	}
	if !strings.Contains(string(raw), "buffer") {
		t.Fatalf("body %s", raw)
	}
}
