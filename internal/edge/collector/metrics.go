package collector

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	accepted         *prometheus.CounterVec
	rejectedRequests *prometheus.CounterVec
	requests         *prometheus.CounterVec
	latency          *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, c *Collector) *metrics {
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_events_accepted_total",
			Help: "Events committed to the buffer and acknowledged to agents, by type.",
		}, []string{"type"}),
		rejectedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_requests_rejected_total",
			Help: "Agent requests refused, by reason (validation, malformed, too_large, unsupported_media_type, buffer_full, shedding, closed). The events they carried, when known, are in gateway_events_rejected_total.",
		}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_collector_requests_total",
			Help: "Agent requests by route and HTTP status.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_collector_request_seconds",
			Help:    "Agent request duration (until the acknowledgement), by route.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 5},
		}, []string{"route"}),
	}
	if reg != nil {
		agents := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gateway_connected_agents",
			Help: "Agents heard from within three heartbeat intervals.",
		}, func() float64 { return float64(c.agents.Connected()) })
		reg.MustRegister(m.accepted, m.rejectedRequests, m.requests, m.latency, agents)
	}
	return m
}
