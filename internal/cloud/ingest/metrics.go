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

	partitionsCreated prometheus.Counter
	partitionRetries  prometheus.Counter
	dbRefusals        *prometheus.CounterVec // endpoint, sqlstate
	resent            prometheus.Counter
	filesDiscarded    prometheus.Counter
	orphansRemoved    prometheus.Counter
	sweepErrors       prometheus.Counter
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
	m.partitionsCreated = prometheus.NewCounter(prometheus.CounterOpts{Name: "ingest_partitions_created_total",
		Help: "Daily time-series partitions ingest created for the days its batches named."})
	m.partitionRetries = prometheus.NewCounter(prometheus.CounterOpts{Name: "ingest_partition_retries_total",
		Help: "Writes that found a daily partition missing (dropped by retention since it was ensured), re-ensured it and tried again."})
	m.dbRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ingest_database_refusals_total",
		Help: "Batches the database refused with a data error (SQLSTATE class 22 or 23) that validation let through, answered 422; by endpoint and SQLSTATE."}, []string{"endpoint", "sqlstate"})
	m.resent = prometheus.NewCounter(prometheus.CounterOpts{Name: "ingest_resent_seqs_total",
		Help: "Sequence numbers of duplicates re-sent under a new number, accounted once each."})
	m.filesDiscarded = prometheus.NewCounter(prometheus.CounterOpts{Name: "ingest_screenshot_files_discarded_total",
		Help: "Screenshot files a request wrote and removed again because no stored row references them (duplicates, refused or failed batches)."})
	m.orphansRemoved = prometheus.NewCounter(prometheus.CounterOpts{Name: "ingest_screenshot_orphans_removed_total",
		Help: "Screenshot files the sweep removed: older than the grace period and referenced by no stored row."})
	m.sweepErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "ingest_screenshot_sweep_errors_total",
		Help: "Screenshot sweep runs that stopped on an error (nothing unverified is removed)."})
	reg.MustRegister(m.batches, m.events, m.duplicates, m.replays, m.rejections, m.writeSecs, m.drops, m.seqGap,
		m.partitionsCreated, m.partitionRetries, m.dbRefusals, m.resent, m.filesDiscarded, m.orphansRemoved, m.sweepErrors)
	return m
}
