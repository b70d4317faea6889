package uplink

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// An upload continues the first traced agent batch among its events, links
// the others, and sends its own context as traceparent; without tracing it
// sends none.
func TestUploadContinuesTheAgentBatchesTraces(t *testing.T) {
	parents := []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-11111111111111111111111111111111-2222222222222222-01",
	}
	for _, traced := range []bool{true, false} {
		t.Run(map[bool]string{true: "traced", false: "untraced"}[traced], func(t *testing.T) {
			var mu sync.Mutex
			var headers []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				headers = append(headers, r.Header.Get(tracing.Header))
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{}`))
			}))
			defer srv.Close()
			b := openBuffer(t, filepath.Join(t.TempDir(), "b.sqlite"))
			defer b.Close()
			for _, tp := range parents {
				id := uuid.Must(uuid.NewV7()).String()
				d := int64(5)
				p, _ := json.Marshal(protocol.Event{EventID: id, Type: protocol.TypeActiveWindow, AgentUID: "a1", ComputerName: "PC-1",
					UserSID: "S-1-5-21-1", Datetime: time.Now().UTC(), DurationSeconds: &d})
				if !traced {
					tp = ""
				}
				if _, err := b.Append(context.Background(), []buffer.Record{{Class: protocol.ClassLog, Type: protocol.TypeActiveWindow,
					EventID: id, Payload: p, TraceParent: tp}}); err != nil {
					t.Fatal(err)
				}
			}
			rec := tracetest.NewSpanRecorder()
			opts := testOptions(srv.URL)
			opts.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			u, err := New(b, opts)
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, u)
			waitFor(t, "the upload", 10*time.Second, func() bool { return drained(b) })
			stop()
			var up sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if s.Name() == "uplink.upload" {
					up = s
				}
			}
			if up == nil {
				t.Fatal("no upload span")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(headers) == 0 || headers[len(headers)-1] != "00-"+up.SpanContext().TraceID().String()+"-"+up.SpanContext().SpanID().String()+"-01" {
				t.Fatalf("traceparent sent %q, upload span %s", headers, up.SpanContext().SpanID())
			}
			first := tracing.SpanContext(parents[0])
			if traced {
				if up.SpanContext().TraceID() != first.TraceID() || up.Parent().SpanID() != first.SpanID() {
					t.Errorf("upload in trace %s under %s, want %s under %s", up.SpanContext().TraceID(), up.Parent().SpanID(), first.TraceID(), first.SpanID())
				}
				if l := up.Links(); len(l) != 2 || l[0].SpanContext.TraceID() != tracing.SpanContext(parents[1]).TraceID() ||
					l[1].SpanContext.TraceID() != tracing.SpanContext(parents[2]).TraceID() {
					t.Errorf("links %+v, want the second and third agent batches", l)
				}
			} else if up.Parent().IsValid() || len(up.Links()) != 0 {
				t.Errorf("untraced events gave the upload a parent %s or links %d", up.Parent().SpanID(), len(up.Links()))
			}
		})
	}
}
