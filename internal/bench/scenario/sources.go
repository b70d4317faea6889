package scenario

import (
	"context"
	_ "embed" // the queue depth's SQL
	"fmt"
	"math"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed sql/queue_depth.sql
var queueDepthSQL string

// writeHistogram is the name of the Agent API's ingest write-duration
// histogram (internal/cloud/ingest metrics: one batch's database
// transaction, by endpoint).
const writeHistogram = "ingest_write_seconds"

// histogram is a cumulative histogram summed over registries and label
// sets: upper bounds (seconds, ascending, +Inf last) and counts.
type histogram struct {
	bounds []float64
	counts []uint64
}

// gatherHistogram sums the histogram name over every registry and label
// set.
func gatherHistogram(regs []prometheus.Gatherer, name string) (histogram, error) {
	sum := map[float64]uint64{}
	for _, reg := range regs {
		mfs, err := reg.Gather()
		if err != nil {
			return histogram{}, fmt.Errorf("scenario: gather %s: %w", name, err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					sum[b.GetUpperBound()] += b.GetCumulativeCount()
				}
				sum[math.Inf(1)] += h.GetSampleCount()
			}
		}
	}
	var out histogram
	for b := range sum {
		out.bounds = append(out.bounds, b)
	}
	sort.Float64s(out.bounds)
	for _, b := range out.bounds {
		out.counts = append(out.counts, sum[b])
	}
	return out, nil
}

// minus is h − prev bucket by bucket (prev an earlier snapshot of the same
// histogram; bounds absent from prev count from zero).
func (h histogram) minus(prev histogram) histogram {
	old := map[float64]uint64{}
	for i, b := range prev.bounds {
		old[b] = prev.counts[i]
	}
	out := histogram{bounds: h.bounds, counts: make([]uint64, len(h.counts))}
	for i, b := range h.bounds {
		out.counts[i] = h.counts[i] - min(old[b], h.counts[i])
	}
	return out
}

// total is the observations.
func (h histogram) total() uint64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// quantile is q (0..1) of h in seconds, interpolated linearly inside the
// bucket as Prometheus' histogram_quantile does (the +Inf bucket answers
// its lower bound); NaN without observations.
func (h histogram) quantile(q float64) float64 {
	n := h.total()
	if n == 0 {
		return math.NaN()
	}
	rank := q * float64(n)
	lower, below := 0.0, uint64(0)
	for i, b := range h.bounds {
		if float64(h.counts[i]) >= rank {
			if math.IsInf(b, 1) {
				return lower
			}
			in := h.counts[i] - below
			if in == 0 {
				return b
			}
			return lower + (b-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = b, h.counts[i]
	}
	return lower
}

// queueDepth counts the commands not yet finished, from the database.
func queueDepth(ctx context.Context, db *pgxpool.Pool) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, queueDepthSQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("scenario: queue depth: %w", err)
	}
	return n, nil
}

// gaugeValue reads a gauge (the first series) from reg; ok false when it
// is not there.
func gaugeValue(reg prometheus.Gatherer, name string) (v float64, ok bool, err error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, false, fmt.Errorf("scenario: gather %s: %w", name, err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue(), true, nil
		}
	}
	return 0, false, nil
}
