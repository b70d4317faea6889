package service

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A request's span continues the caller's traceparent, and a record logged
// with the request's context carries its trace and request ids.
func TestTracedContinuesTheCallerAndLogsIDs(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelInfo, "dashboard-api")
	h := Traced(tp, "dashboard-api")(RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handled")
	})))
	req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/api/v2/employees?q=Jane", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if s.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("span %s in trace %s with parent %s", s.Name(), s.SpanContext().TraceID(), s.Parent().SpanID())
	}
	for _, a := range s.Attributes() {
		if bytes.Contains([]byte(a.Value.String()), []byte("Jane")) {
			t.Errorf("attribute %s carries the query", a.Key)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || m["span_id"] != s.SpanContext().SpanID().String() || m["request_id"] == nil {
		t.Fatalf("log line lacks the ids: %s", buf.String())
	}
}

type plain struct{}

func (*plain) ServeHTTP(http.ResponseWriter, *http.Request) {}

// Without a provider the handler is the one given: nothing per request.
func TestTracedNilIsIdentity(t *testing.T) {
	h := &plain{}
	if got, ok := Traced(nil, "x")(h).(*plain); !ok || got != h {
		t.Fatal("tracing off wraps the handler")
	}
}
