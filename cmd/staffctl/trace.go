package main

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// untracedCommands run servers or load for as long as they run: a span
// around them would be one hours-long root, so they are not traced.
var untracedCommands = map[string]bool{"up": true, "simulate": true, "bench": true}

// traceCommand starts the span of an administrative command when OTEL_*
// configures tracing (issue 19), so what it enqueues (a policy release, a
// key rotation, a device command) carries its trace to the gateway; end
// ends it and flushes the spans. With tracing off both do nothing.
func traceCommand(ctx context.Context, getenv func(string) string, name string) (context.Context, func(), error) {
	if untracedCommands[name] {
		return ctx, func() {}, nil
	}
	tp, err := tracing.FromEnv(ctx, getenv, "staffctl")
	if err != nil {
		return ctx, nil, fmt.Errorf("tracing: %w", err)
	}
	if !tp.Enabled() {
		return ctx, func() {}, nil
	}
	ctx, span := tp.Tracer("github.com/staffcontrol/staffcontrol/cmd/staffctl").Start(ctx, "staffctl "+name,
		trace.WithSpanKind(trace.SpanKindClient))
	return ctx, func() {
		span.End()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx) // a lost span must not fail the command
	}, nil
}
