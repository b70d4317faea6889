package buffer

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	rejected      *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	overflow      *prometheus.CounterVec
	level         prometheus.Gauge
	commitSeconds prometheus.Histogram
	deadMoved     *prometheus.CounterVec
	deadReplayed  prometheus.Counter
	deadPurged    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, b *Buffer) *metrics {
	m := &metrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_events_rejected_total",
			Help: "Events refused by the gateway, by reason (validation, too_large, buffer_full, shedding, ...).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_events_dropped_total",
			Help: "Buffered events discarded unsent, by reason (retention, disk_pressure, rejected_by_cloud, persistent_failure, ...) and class.",
		}, []string{"reason", "class"}),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "buffer_overflow_total",
			Help: "Times the buffer entered a back-pressure level (warning at 80 %, critical at 95 %).",
		}, []string{"level"}),
		level: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_backpressure_state",
			Help: "Back-pressure level: 0 normal, 1 warning (shedding screenshots), 2 critical (refusing data).",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gateway_buffer_commit_seconds",
			Help:    "Duration of one group commit of appended events.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, 1},
		}),
		deadMoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_dead_letters_moved_total",
			Help: "Events moved from their stream to the dead letters, by reason (rejected_by_cloud, persistent_failure).",
		}, []string{"reason"}),
		deadReplayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_dead_letters_replayed_total",
			Help: "Dead letters moved back into their stream by replay_dead_letters.",
		}),
		deadPurged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_dead_letters_purged_total",
			Help: "Dead letters deleted unreplayed, by cause (expired: older than the retention; bound: over the count or byte bound).",
		}, []string{"cause"}),
	}
	if reg == nil {
		return m
	}
	usage := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_buffer_usage_ratio",
		Help: "Buffer usage: the larger of accounted bytes / max size and filesystem fullness.",
	}, b.Usage)
	quarantined := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gateway_buffer_quarantined_total",
		Help: "Corrupt buffer files moved aside at start (a fresh buffer replaced each).",
	}, func() float64 { return float64(b.quarantined.Load()) })
	oldest := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_buffer_oldest_unsent_age_seconds",
		Help: "Age of the oldest event not yet acknowledged by the cloud (0 when empty).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		t, ok, err := b.OldestUnsent(ctx)
		if err != nil || !ok {
			return 0
		}
		return b.now().Sub(t).Seconds()
	})
	deadRows := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_dead_letters",
		Help: "Dead letters held (events set aside, replayable with replay_dead_letters).",
	}, func() float64 { b.mu.Lock(); defer b.mu.Unlock(); return float64(b.deadRows) })
	deadBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_dead_letters_bytes",
		Help: "Accounted bytes of the dead letters (counted in the buffer's usage).",
	}, func() float64 { b.mu.Lock(); defer b.mu.Unlock(); return float64(b.deadBytes) })
	reg.MustRegister(m.rejected, m.dropped, m.overflow, m.level, m.commitSeconds, usage, oldest, quarantined,
		m.deadMoved, m.deadReplayed, m.deadPurged, deadRows, deadBytes,
		&classCollector{b: b,
			rows:  prometheus.NewDesc("gateway_buffer_rows", "Buffered rows by class.", []string{"class"}, nil),
			bytes: prometheus.NewDesc("gateway_buffer_bytes", "Accounted buffered bytes by class.", []string{"class"}, nil)})
	return m
}

// Rejected counts events refused before reaching the buffer (validation,
// size limits) so that all refusals share one metric.
func (b *Buffer) Rejected(reason string, n int) {
	b.m.rejected.WithLabelValues(reason).Add(float64(n))
}

type classCollector struct {
	b           *Buffer
	rows, bytes *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *classCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.rows
	ch <- c.bytes
}

// Collect implements prometheus.Collector: rows and bytes per class.
func (c *classCollector) Collect(ch chan<- prometheus.Metric) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	for class, v := range c.b.counters {
		ch <- prometheus.MustNewConstMetric(c.rows, prometheus.GaugeValue, float64(v.rows), class)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(v.bytes), class)
	}
}
