package redmetrics

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// GRPC holds the gRPC server RED metrics of one process, under the names of
// the ecosystem's go-grpc-prometheus (grpc_server_handled_total,
// grpc_server_handling_seconds), so its dashboards apply.
type GRPC struct {
	handled  *prometheus.CounterVec
	handling *prometheus.HistogramVec
}

// NewGRPC registers the gRPC server RED metrics with reg.
func NewGRPC(reg prometheus.Registerer) (*GRPC, error) {
	m := &GRPC{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "gRPC calls completed on the server, by service, method and status code.",
		}, []string{"grpc_service", "grpc_method", "grpc_code"}),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Time from a gRPC call's start to its end on the server (a stream's whole life), by service and method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"grpc_service", "grpc_method"}),
	}
	for _, c := range []prometheus.Collector{m.handled, m.handling} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Init creates the series of every method of the services registered on s
// (call it after registering them): the histogram and the Internal and
// Unavailable counters at zero.
func (m *GRPC) Init(s *grpc.Server) {
	for svc, info := range s.GetServiceInfo() {
		for _, meth := range info.Methods {
			m.handling.WithLabelValues(svc, meth.Name)
			for _, c := range []codes.Code{codes.Internal, codes.Unavailable} {
				m.handled.WithLabelValues(svc, meth.Name, c.String())
			}
		}
	}
}

// ServerOptions are the interceptors that count and time every call.
func (m *GRPC) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			start := time.Now()
			resp, err := h(ctx, req)
			m.observe(info.FullMethod, start, err)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			start := time.Now()
			err := h(srv, ss)
			m.observe(info.FullMethod, start, err)
			return err
		}),
	}
}

func (m *GRPC) observe(fullMethod string, start time.Time, err error) {
	svc, meth := SplitMethod(fullMethod)
	m.handled.WithLabelValues(svc, meth, status.Code(err).String()).Inc()
	m.handling.WithLabelValues(svc, meth).Observe(time.Since(start).Seconds())
}

// SplitMethod splits "/package.Service/Method" into its service and method.
func SplitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}
