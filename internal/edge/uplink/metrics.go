package uplink

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	batches *prometheus.CounterVec
	events  *prometheus.CounterVec
	bytes   *prometheus.CounterVec
	retries *prometheus.CounterVec
	latency *prometheus.HistogramVec
	paused  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, u *Uplink) *metrics {
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_uplink_batches_total",
			Help: "Upload attempts by stream and result (HTTP status or network_error).",
		}, []string{"stream", "result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_uplink_events_total",
			Help: "Events acknowledged by the cloud, by stream.",
		}, []string{"stream"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_uplink_bytes_total",
			Help: "Request body bytes (compressed) of acknowledged batches, by stream.",
		}, []string{"stream"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_uplink_retries_total",
			Help: "Retries by stream and kind (error: same batch again; split: 413/400 halved; reform: 422; isolate: a persistently failing batch split; dead_letter: a single event set aside).",
		}, []string{"stream", "kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_uplink_latency_seconds",
			Help:    "Round trip of one upload request, by stream.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"stream"}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_uplink_paused",
			Help: "1 while uploads are paused because the cloud rejected the API key (401/403).",
		}),
	}
	if reg != nil {
		rate := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gateway_uplink_rate_events_per_second",
			Help: "Events acknowledged by the cloud per second over the last 10 s.",
		}, func() float64 { return u.Status().RateEventsPerSecond })
		reg.MustRegister(m.batches, m.events, m.bytes, m.retries, m.latency, m.paused, rate)
	}
	return m
}
