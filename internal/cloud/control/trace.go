package control

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// traceResult starts the span of recording a command's outcome, a child of
// the gateway's span for the command (the acknowledgement's traceparent,
// which continues the enqueuer's trace), and returns its context and end.
// An acknowledgement without a traceparent, and a received one, start
// nothing: the hot path of untraced commands is unchanged.
func (h *Hub) traceResult(ctx context.Context, gw auth.Gateway, a protocol.CommandAck) (context.Context, func()) {
	if a.TraceParent == "" || a.Phase == protocol.AckReceived {
		return ctx, func() {}
	}
	ctx, span := h.tracer.Start(tracing.Extract(ctx, a.TraceParent), "control.record_result", trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String(tracing.AttrCommand, a.CommandID), attribute.String(tracing.AttrGateway, gw.ID.String()),
			attribute.Int64(tracing.AttrOrganization, gw.OrganizationID), attribute.String(tracing.AttrStatus, a.Phase))
	}
	return ctx, func() { span.End() }
}
