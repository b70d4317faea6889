package tracing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/tracing"
	"github.com/staffcontrol/staffcontrol/internal/tracing/otlpreceiver"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name         string
		env          map[string]string
		wantEndpoint string
		wantService  string
		wantErr      string
	}{
		{"off by default", nil, "", "svc", ""},
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://tempo:4318/"}, "http://tempo:4318/v1/traces", "svc", ""},
		{"traces endpoint wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/x"}, "https://b/x", "svc", ""},
		{"service name", map[string]string{"OTEL_SERVICE_NAME": "gw-7"}, "", "gw-7", ""},
		{"disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "true"}, "", "svc", ""},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"}, "", "svc", ""},
		{"grpc refused", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "", "", "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"bad URL", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "tempo:4318"}, "", "", "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"bad sampler", map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, "", "", "OTEL_TRACES_SAMPLER"},
		{"bad ratio", map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "", "", "OTEL_TRACES_SAMPLER_ARG"},
		{"bad headers", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "", "", "OTEL_EXPORTER_OTLP_HEADERS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tracing.ConfigFromEnv(env(tc.env), "svc")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Endpoint != tc.wantEndpoint || c.ServiceName != tc.wantService {
				t.Fatalf("got %+v", c)
			}
		})
	}
}

func TestOffIsNoop(t *testing.T) {
	p, err := tracing.FromEnv(context.Background(), env(nil), "svc")
	if err != nil {
		t.Fatal(err)
	}
	if p.Enabled() {
		t.Fatal("enabled without an endpoint")
	}
	ctx, span := p.Tracer("t").Start(context.Background(), "x")
	defer span.End()
	if span.SpanContext().IsValid() || tracing.Traceparent(ctx) != "" {
		t.Fatal("a no-op span has a context")
	}
	if n := testing.AllocsPerRun(100, func() {
		_, s := p.Tracer("t").Start(ctx, "x")
		s.End()
	}); n > 1 { // the context carrying the no-op span
		t.Fatalf("a span with tracing off allocates %v times", n)
	}
}

// Spans reach a real OTLP/HTTP receiver with their service, parent chain,
// attributes and links; a traceparent round-trips.
func TestExportToReceiver(t *testing.T) {
	rcv, err := otlpreceiver.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	ctx := context.Background()
	p, err := tracing.FromEnv(ctx, env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.BaseURL(), "OTEL_SERVICE_NAME": "unit"}), "svc")
	if err != nil {
		t.Fatal(err)
	}
	tr := p.Tracer("test")
	ctx1, root := tr.Start(ctx, "root")
	tp := tracing.Traceparent(ctx1)
	_, other := tr.Start(ctx, "other")
	remote := tracing.Extract(ctx, tp)
	_, child := tr.Start(remote, "child", trace.WithLinks(trace.Link{SpanContext: other.SpanContext()}),
		trace.WithAttributes(attribute.String(tracing.AttrBatch, "b-1")))
	child.End()
	other.End()
	root.End()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rcv.Spans()) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	by := map[string]otlpreceiver.Span{}
	for _, s := range rcv.Spans() {
		by[s.Name] = s
	}
	r, c, o := by["root"], by["child"], by["other"]
	if r.Service != "unit" || c.TraceID != r.TraceID || c.ParentSpanID != r.SpanID || r.ParentSpanID != "" {
		t.Fatalf("chain broken: %+v", rcv.Spans())
	}
	if c.Attributes[tracing.AttrBatch] != "b-1" || len(c.Links) != 1 || c.Links[0].SpanID != o.SpanID {
		t.Fatalf("child attributes or links: %+v", c)
	}
	if errs := rcv.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
}

func TestExtractIgnoresGarbage(t *testing.T) {
	for _, s := range []string{"", "garbage", "00-00000000000000000000000000000000-0000000000000000-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		if tracing.SpanContext(s).IsValid() {
			t.Errorf("%q parsed as valid", s)
		}
	}
	if !tracing.SpanContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").IsValid() {
		t.Error("a valid traceparent refused")
	}
}

func FuzzExtract(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Fuzz(func(t *testing.T, s string) {
		sc := tracing.SpanContext(s)
		if sc.IsValid() {
			// What parses re-encodes to a well-formed header.
			ctx := trace.ContextWithSpanContext(context.Background(), sc)
			if tp := tracing.Traceparent(ctx); !tracing.SpanContext(tp).IsValid() {
				t.Fatalf("%q → %q does not parse", s, tp)
			}
		}
	})
}

// BenchmarkSpan is the per-span cost on the hot paths (one span per agent
// batch, per upload, per ingest request): off (the no-op provider) and on
// (the SDK batching to a real OTLP/HTTP receiver), with the traceparent
// formatted as the buffer and the uplink do.
func BenchmarkSpan(b *testing.B) {
	rcv, err := otlpreceiver.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer rcv.Close()
	for _, endpoint := range []string{"", rcv.BaseURL()} {
		name := "tracing=off"
		if endpoint != "" {
			name = "tracing=on"
		}
		b.Run(name, func(b *testing.B) {
			p, err := tracing.FromEnv(context.Background(), env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}), "bench")
			if err != nil {
				b.Fatal(err)
			}
			defer p.Shutdown(context.Background()) //nolint:errcheck // a benchmark
			tr := p.Tracer("bench")
			b.ReportAllocs()
			for b.Loop() {
				ctx, span := tr.Start(context.Background(), "batch")
				_ = tracing.Traceparent(ctx)
				span.End()
			}
		})
	}
}
