package main

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/tracing"
	"github.com/staffcontrol/staffcontrol/internal/tracing/otlpreceiver"
)

// An administrative command is a span exported before staffctl exits (what
// it enqueues carries the span's context); servers and load are not traced,
// and nothing is without an endpoint.
func TestTraceCommand(t *testing.T) {
	rcv, err := otlpreceiver.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	env := func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.BaseURL()}[k]
	}
	for _, tc := range []struct {
		name   string
		getenv func(string) string
		traced bool
	}{{"policy", env, true}, {"up", env, false}, {"device", func(string) string { return "" }, false}} {
		ctx, end, err := traceCommand(context.Background(), tc.getenv, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		tp := tracing.Traceparent(ctx)
		end()
		if (tp != "") != tc.traced {
			t.Errorf("%s: traceparent %q, traced %v", tc.name, tp, tc.traced)
		}
		if tc.traced {
			spans := rcv.Spans()
			if len(spans) != 1 || spans[0].Name != "staffctl policy" || spans[0].Service != "staffctl" ||
				spans[0].SpanID != trace.SpanContextFromContext(ctx).SpanID().String() {
				t.Errorf("exported %+v", spans)
			}
		}
	}
	if _, _, err := traceCommand(context.Background(), func(k string) string {
		return map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}[k]
	}, "policy"); err == nil {
		t.Error("a bad OTEL_TRACES_SAMPLER accepted")
	}
}
