package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	batches    *prometheus.CounterVec   // endpoint, outcome
	events     *prometheus.CounterVec   // type, organization
	duplicates *prometheus.CounterVec   // type
	replays    *prometheus.CounterVec   // endpoint
	rejections *prometheus.CounterVec   // endpoint, reason
	writeSecs  *prometheus.HistogramVec // endpoint
	drops      *prometheus.CounterVec   // reason, class
	seqGap     *prometheus.GaugeVec     // gateway
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ingest_batches_total",
			Help: "Ingest requests by endpoint and outcome (stored, replayed, rejected, failed)."}, []string{"endpoint", "outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ingest_events_total",
			Help: "Events newly stored, by type and organisation."}, []string{"type", "organization"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ingest_duplicate_events_total",
			Help: "Events whose id was already stored (re-sent or re-batched), by type."}, []string{"type"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ingest_replays_total",
			Help: "Requests answered with the stored answer of their Idempotency-Key."}, []string{"endpoint"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ingest_rejections_total",
			Help: "Requests rejected, by endpoint and reason."}, []string{"endpoint", "reason"}),
		writeSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ingest_write_seconds",
			Help:    "Time to write one batch (the database transaction), by endpoint.",
			Buckets: []float64{.002, .005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5}}, []string{"endpoint"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ingest_gateway_drops_total",
			Help: "Events gateways report they discarded, by reason and class."}, []string{"reason", "class"}),
		seqGap: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ingest_sequence_gap",
			Help: "Per gateway: highest sequence number minus events stored minus events reported dropped (events unaccounted for)."}, []string{"gateway"}),
	}
	reg.MustRegister(m.batches, m.events, m.duplicates, m.replays, m.rejections, m.writeSecs, m.drops, m.seqGap)
	return m
}
