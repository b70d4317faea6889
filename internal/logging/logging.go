// Package logging builds the one log format of every binary (issue 19):
// JSON lines through log/slog, a level, the service's name, everything
// scrubbed by logscrub (secrets and personal data by name and by shape,
// window titles when the policy says so), and, from the record's context,
// the active span's trace_id and span_id and the request id of the request
// being served. A log line and a trace therefore find each other.
//
// It is a shared leaf package: the edge and the cloud both build their
// loggers here and it imports neither.
package logging

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/logscrub"
)

// Options configures New.
type Options struct {
	// Level is the minimum level written (nil: info).
	Level slog.Leveler
	// Service names the binary (agent-api, dashboard-api, gateway, staffctl);
	// every record carries it as "service". Empty leaves it out.
	Service string
	// Titles, when on, redacts window titles and URLs (the gateway sets it
	// from its policy's privacy.mask_window_titles). Nil: never.
	Titles *logscrub.TitleSwitch
}

// New returns the JSON logger writing to w: records are scrubbed first, then
// the context's trace and request ids are added (ids are never scrubbed:
// they are not secrets and a shape rule must not eat them).
func New(w io.Writer, o Options) *slog.Logger {
	return slog.New(Wrap(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: o.Level}), o, o.Service))
}

// Wrap puts the scrubber and the context ids in front of next, for a caller
// with its own final handler (a test's checker). service, when not empty,
// is added as the "service" attribute.
func Wrap(next slog.Handler, o Options, service string) slog.Handler {
	var h slog.Handler = ContextHandler{next: next}
	if service != "" {
		h = h.WithAttrs([]slog.Attr{slog.String("service", service)})
	}
	return logscrub.NewWithOptions(h, logscrub.Options{Titles: o.Titles})
}

// ContextHandler adds trace_id and span_id when the record's context holds
// a valid span context, and request_id when it holds a request id. Under a
// logger's WithGroup they land inside the group, as any record attribute
// does (nothing in this module logs through a group).
type ContextHandler struct{ next slog.Handler }

// NewContextHandler returns a ContextHandler in front of next.
func NewContextHandler(next slog.Handler) ContextHandler { return ContextHandler{next: next} }

// Enabled reports whether next handles level.
func (h ContextHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds the context's ids to r and passes it on.
func (h ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r = r.Clone()
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
		if id := RequestIDFrom(ctx); id != "" {
			r = r.Clone()
			r.AddAttrs(slog.String("request_id", id))
		}
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a ContextHandler over next.WithAttrs.
func (h ContextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return ContextHandler{next: h.next.WithAttrs(attrs)}
}

// WithGroup returns a ContextHandler over next.WithGroup.
func (h ContextHandler) WithGroup(name string) slog.Handler {
	return ContextHandler{next: h.next.WithGroup(name)}
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying a request id, which every record
// logged with that context carries as request_id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id WithRequestID put in ctx ("" if none).
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
