package stack

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxExposition bounds the /metrics body Scrape reads.
const maxExposition = 8 << 20

// Families are metric families merged over one or more sources, by name:
// the in-process registries of the replicas or a gateway (Gather), or a
// process's /metrics (Scrape, ParseText). Sum and Histogram add up a
// family over its label sets and sources.
type Families map[string][]*dto.MetricFamily

// Gather merges the metric families of every Agent API replica's
// registry.
func (s *Stack) Gather() (Families, error) {
	gs := make([]prometheus.Gatherer, len(s.Replicas))
	for i, r := range s.Replicas {
		gs[i] = r.Registry
	}
	return Gather(gs...)
}

// Gather merges the metric families of gs (in-process registries).
func Gather(gs ...prometheus.Gatherer) (Families, error) {
	out := Families{}
	for _, g := range gs {
		mfs, err := g.Gather()
		if err != nil {
			return nil, fmt.Errorf("stack: gather metrics: %w", err)
		}
		for _, mf := range mfs {
			out[mf.GetName()] = append(out[mf.GetName()], mf)
		}
	}
	return out, nil
}

// ParseText parses a Prometheus text exposition (what a /metrics answers)
// with the Prometheus project's own parser.
func ParseText(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("stack: parse metrics: %w", err)
	}
	out := make(Families, len(mfs))
	for name, mf := range mfs {
		out[name] = []*dto.MetricFamily{mf}
	}
	return out, nil
}

// Scrape reads and parses the /metrics of the process at base (a base URL
// such as http://127.0.0.1:8080); at most 8 MiB of it.
func Scrape(ctx context.Context, client *http.Client, base string) (Families, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("stack: scrape %s: %w", base, err)
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("stack: scrape %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stack: scrape %s: status %d", base, resp.StatusCode)
	}
	return ParseText(io.LimitReader(resp.Body, maxExposition))
}

// Has reports whether a family name with at least one series is there.
func (f Families) Has(name string) bool {
	for _, mf := range f[name] {
		if len(mf.GetMetric()) > 0 {
			return true
		}
	}
	return false
}

// Sum adds up every series of the counter, gauge or untyped family name
// over its label sets and sources (0 when absent; histograms and
// summaries add nothing: see Histogram).
func (f Families) Sum(name string) float64 {
	var sum float64
	for _, mf := range f[name] {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Untyped != nil:
				sum += m.GetUntyped().GetValue()
			}
		}
	}
	return sum
}

// Histogram is a cumulative histogram summed over label sets and sources.
type Histogram struct {
	// Bounds are the buckets' upper bounds (ascending, +Inf last) and
	// Counts their cumulative counts; the +Inf bucket is the count of
	// observations.
	Bounds []float64
	Counts []uint64
	// Sum is the sum of the observed values.
	Sum float64
}

// Count is the observations (the +Inf bucket; 0 when empty).
func (h Histogram) Count() uint64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// Histogram adds up the histogram family name over its label sets and
// sources, bucket by upper bound (empty when absent).
func (f Families) Histogram(name string) Histogram {
	counts := map[float64]uint64{}
	var out Histogram
	for _, mf := range f[name] {
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			for _, b := range h.GetBucket() {
				if ub := b.GetUpperBound(); !math.IsInf(ub, 1) { // the +Inf bucket is the sample count
					counts[ub] += count(b.GetCumulativeCount(), b.GetCumulativeCountFloat())
				}
			}
			counts[math.Inf(1)] += count(h.GetSampleCount(), h.GetSampleCountFloat())
			out.Sum += h.GetSampleSum()
		}
	}
	for b := range counts {
		out.Bounds = append(out.Bounds, b)
	}
	sort.Float64s(out.Bounds)
	for _, b := range out.Bounds {
		out.Counts = append(out.Counts, counts[b])
	}
	return out
}

// count is an integer count, or a float one (an exposition with
// non-integer or very large counts) rounded down; negative or NaN is 0.
func count(n uint64, f float64) uint64 {
	if f > 0 && n == 0 {
		if f >= math.MaxUint64 {
			return math.MaxUint64
		}
		return uint64(f)
	}
	return n
}

// Minus is h − prev bucket by bucket (prev an earlier reading of the same
// histogram; bounds absent from prev count from zero; a bucket that went
// down, a source restarted, counts as zero): the observations between the
// two readings.
func (h Histogram) Minus(prev Histogram) Histogram {
	old := make(map[float64]uint64, len(prev.Bounds))
	for i, b := range prev.Bounds {
		old[b] = prev.Counts[i]
	}
	out := Histogram{Bounds: h.Bounds, Counts: make([]uint64, len(h.Counts)), Sum: max(0, h.Sum-prev.Sum)}
	for i, b := range h.Bounds {
		out.Counts[i] = h.Counts[i] - min(old[b], h.Counts[i])
	}
	return out
}

// Quantile is q (0..1) of h in its unit, interpolated linearly inside the
// bucket as Prometheus' histogram_quantile does (the +Inf bucket answers
// its lower bound); NaN without observations.
func (h Histogram) Quantile(q float64) float64 {
	n := h.Count()
	if n == 0 {
		return math.NaN()
	}
	rank := q * float64(n)
	lower, below := 0.0, uint64(0)
	for i, b := range h.Bounds {
		if float64(h.Counts[i]) >= rank {
			if math.IsInf(b, 1) {
				return lower
			}
			in := h.Counts[i] - below
			if in == 0 {
				return b
			}
			return lower + (b-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = b, h.Counts[i]
	}
	return lower
}
