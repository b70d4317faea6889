package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/logging/planted"
	"github.com/staffcontrol/staffcontrol/internal/logscrub"
)

func TestNewScrubsPlantedSecrets(t *testing.T) {
	var buf bytes.Buffer
	var titles logscrub.TitleSwitch
	titles.Set(true)
	planted.Log(New(&buf, Options{Service: "test", Titles: &titles}))
	planted.Check(t, buf.String(), true)
	if n := strings.Count(buf.String(), "\n"); n != planted.Lines {
		t.Fatalf("want 8 lines, got %d:\n%s", n, buf.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if m["service"] != "test" || m["level"] == nil || m["msg"] == nil || m["time"] == nil {
			t.Errorf("line lacks service/level/msg/time: %s", line)
		}
	}
}

func TestContextIDs(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	tests := []struct {
		name string
		ctx  context.Context
		want map[string]any
	}{
		{"none", context.Background(), map[string]any{"trace_id": nil, "span_id": nil, "request_id": nil}},
		{"span", trace.ContextWithSpanContext(context.Background(), sc),
			map[string]any{"trace_id": tid.String(), "span_id": sid.String(), "request_id": nil}},
		{"request", WithRequestID(context.Background(), "req-1"), map[string]any{"trace_id": nil, "request_id": "req-1"}},
		{"both", WithRequestID(trace.ContextWithSpanContext(context.Background(), sc), "req-2"),
			map[string]any{"trace_id": tid.String(), "span_id": sid.String(), "request_id": "req-2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			New(&buf, Options{Level: slog.LevelDebug}).With("component", "x").DebugContext(tc.ctx, "hello")
			var m map[string]any
			if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if m[k] != v {
					t.Errorf("%s = %v, want %v (%s)", k, m[k], v, buf.String())
				}
			}
		})
	}
}

func TestLevel(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{Level: slog.LevelWarn})
	l.Info("quiet")
	l.Warn("loud")
	if strings.Contains(buf.String(), "quiet") || !strings.Contains(buf.String(), "loud") {
		t.Fatalf("level not applied: %s", buf.String())
	}
}
