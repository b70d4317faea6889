// Package redmetrics provides the RED metrics (rate, errors, duration) of
// the HTTP routes and gRPC methods a process serves, under the names every
// service shares: http_requests_total{route,method,code},
// http_request_duration_seconds{route,method}, grpc_server_handled_total
// {grpc_service,grpc_method,grpc_code} and grpc_server_handling_seconds
// {grpc_service,grpc_method}. The route label is the http.ServeMux pattern
// that matched (its path part), never the raw path, so the label's values
// are bounded by the routes table.
package redmetrics

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Unmatched is the route label of a request no pattern matched (a 404 or
// 405 of the mux itself).
const Unmatched = "unmatched"

// HTTP holds the HTTP RED metrics of one process.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHTTP registers the HTTP RED metrics with reg.
func NewHTTP(reg prometheus.Registerer) (*HTTP, error) {
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by route (the mux pattern), method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to serve an HTTP request (until the handler returns, or until the upgrade for a WebSocket), by route and method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Init creates the series of the given mux patterns ("METHOD /path") before
// their first request: the duration histogram and the 500 and 503 counters
// at zero, so that rate() and increase() see the first error. Patterns
// without a method are skipped.
func (m *HTTP) Init(patterns ...string) {
	for _, p := range patterns {
		method, route, ok := strings.Cut(p, " ")
		if !ok || method == "" {
			continue
		}
		route = strings.TrimSpace(route)
		m.duration.WithLabelValues(route, method)
		for _, code := range []string{"500", "503"} {
			m.requests.WithLabelValues(route, method, code)
		}
	}
}

// Handler counts and times every request mux serves. It must wrap the
// ServeMux directly (nothing between them may replace the *http.Request),
// because the route is read from the request's Pattern, which the mux sets.
func (m *HTTP) Handler(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			end := rec.upgraded
			if end.IsZero() {
				end = time.Now()
			}
			route, method := Route(r.Pattern), Method(r.Method)
			m.requests.WithLabelValues(route, method, strconv.Itoa(rec.status())).Inc()
			m.duration.WithLabelValues(route, method).Observe(end.Sub(start).Seconds())
		}()
		mux.ServeHTTP(rec, r)
	})
}

// Route is the route label of a mux pattern: its path part ("GET /a/{id}"
// → "/a/{id}"), or Unmatched for none.
func Route(pattern string) string {
	if pattern == "" {
		return Unmatched
	}
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		return strings.TrimSpace(pattern[i+1:])
	}
	return pattern
}

// Method is the method label: the standard methods as they are, anything
// else "OTHER" (a client cannot grow the label set).
func Method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// recorder remembers the status a handler wrote; Flush and Hijack pass
// through (server-sent events, WebSocket upgrades) and Unwrap serves
// http.ResponseController.
type recorder struct {
	http.ResponseWriter
	code     int
	upgraded time.Time
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 && code >= 200 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) status() int {
	switch {
	case !r.upgraded.IsZero():
		return http.StatusSwitchingProtocols
	case r.code == 0:
		return http.StatusOK
	}
	return r.code
}

// Flush flushes the answer when the underlying writer can.
func (r *recorder) Flush() {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// Hijack takes over the connection (a WebSocket upgrade); the request's
// duration ends here.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil {
		r.upgraded = time.Now()
	}
	return c, rw, err
}

// Unwrap is the writer underneath, for http.ResponseController.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
