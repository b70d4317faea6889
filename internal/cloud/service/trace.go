package service

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// Traced returns middleware that gives every request a server span named
// "<service> <method>", continuing the caller's traceparent, so that what a
// request enqueues (a command) and logs (trace_id) joins its trace. The
// span carries the method only: a path or query may hold personal data.
// With tp nil the middleware is the identity (nothing added per request).
// The writer is passed on unwrapped (streams and upgrades keep working).
func Traced(tp trace.TracerProvider, service string) func(http.Handler) http.Handler {
	if tp == nil {
		return func(next http.Handler) http.Handler { return next }
	}
	tr := tp.Tracer("github.com/staffcontrol/staffcontrol/internal/cloud/service")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, span := tr.Start(tracing.Extract(r.Context(), r.Header.Get(tracing.Header)), service+" "+r.Method,
				trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String("http.request.method", r.Method)))
			defer span.End()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}
