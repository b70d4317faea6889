package stack

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricFamiliesSum sums counters, gauges and histograms over label sets and
// over registries, as Stack.Gather merges the replicas'.
func TestMetricFamiliesSum(t *testing.T) {
	regs := make([]prometheus.Gatherer, 2)
	for i := range regs {
		reg := prometheus.NewRegistry()
		events := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ingest_events_total", Help: "h"}, []string{"stream"})
		rows := prometheus.NewGauge(prometheus.GaugeOpts{Name: "rows", Help: "h"})
		writes := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ingest_write_seconds", Help: "h", Buckets: []float64{0.1, 1}}, []string{"endpoint"})
		reg.MustRegister(events, rows, writes)
		events.WithLabelValues("logs").Add(float64(10 * (i + 1)))
		events.WithLabelValues("badges").Add(1)
		rows.Set(float64(i) + 0.5)
		writes.WithLabelValues("events").Observe(0.05)
		writes.WithLabelValues("logs").Observe(0.5)
		writes.WithLabelValues("logs").Observe(5)
		regs[i] = reg
	}
	fams, err := Gather(regs...)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		sum  float64
		has  bool
	}{
		{"ingest_events_total", 32, true},
		{"rows", 2, true},
		{"ingest_write_seconds", 0, true}, // a histogram adds nothing to Sum
		{"absent", 0, false},
	}
	for _, tc := range cases {
		if got := fams.Sum(tc.name); got != tc.sum {
			t.Errorf("Sum(%s) = %v, want %v", tc.name, got, tc.sum)
		}
		if got := fams.Has(tc.name); got != tc.has {
			t.Errorf("Has(%s) = %v, want %v", tc.name, got, tc.has)
		}
	}
	h := fams.Histogram("ingest_write_seconds")
	if want := []float64{0.1, 1, math.Inf(1)}; !slices.Equal(h.Bounds, want) {
		t.Fatalf("bounds = %v, want %v", h.Bounds, want)
	}
	if want := []uint64{2, 4, 6}; !slices.Equal(h.Counts, want) || h.Count() != 6 {
		t.Fatalf("counts = %v (count %d), want %v", h.Counts, h.Count(), want)
	}
	if math.Abs(h.Sum-11.1) > 1e-9 {
		t.Fatalf("sum = %v, want 11.1", h.Sum)
	}
	if e := fams.Histogram("absent"); e.Count() != 0 || len(e.Bounds) != 0 {
		t.Fatalf("absent histogram = %+v", e)
	}
}

// TestMetricsParseText reads the text exposition, the +Inf bucket counted once.
func TestMetricsParseText(t *testing.T) {
	fams, err := ParseText(strings.NewReader(`# TYPE lat histogram
lat_bucket{le="0.5",a="x"} 1
lat_bucket{le="+Inf",a="x"} 3
lat_sum{a="x"} 4
lat_count{a="x"} 3
lat_bucket{le="0.5",a="y"} 2
lat_bucket{le="+Inf",a="y"} 2
lat_sum{a="y"} 0.5
lat_count{a="y"} 2
plain{q="}\""} 2.5
plain 1
`))
	if err != nil {
		t.Fatal(err)
	}
	h := fams.Histogram("lat")
	if !slices.Equal(h.Bounds, []float64{0.5, math.Inf(1)}) || !slices.Equal(h.Counts, []uint64{3, 5}) || h.Sum != 4.5 {
		t.Fatalf("histogram = %+v", h)
	}
	if got := fams.Sum("plain"); got != 3.5 {
		t.Fatalf("plain = %v", got)
	}
	for _, bad := range []string{"x{a=\"1\" 1", "x y", "x", "# TYPE x counter\n# TYPE x gauge\nx 1"} {
		if _, err := ParseText(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzParseText: any input parses or fails, never panics, and the sums of
// what parsed can be taken.
func FuzzParseText(f *testing.F) {
	f.Add([]byte("gateway_buffer_rows{class=\"log\"} 12\n# c\ngateway_uplink_events_total 3\n"))
	f.Add([]byte("gateway_buffer_rows{a=\"\\\"}\"} 1e308\ngateway_buffer_rows 1e308\n"))
	f.Add([]byte("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fams, err := ParseText(strings.NewReader(string(raw)))
		if err != nil {
			return
		}
		for name := range fams {
			_ = fams.Sum(name)
			h := fams.Histogram(name)
			if len(h.Bounds) != len(h.Counts) {
				t.Fatalf("%s: %d bounds, %d counts", name, len(h.Bounds), len(h.Counts))
			}
		}
	})
}

// TestMetricHistogramQuantile: the quantile of a summed, differenced histogram
// interpolates as histogram_quantile does.
func TestMetricHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	prev := Histogram{Bounds: []float64{0.1, 0.2, inf}, Counts: []uint64{10, 10, 10}, Sum: 1}
	now := Histogram{Bounds: []float64{0.1, 0.2, inf}, Counts: []uint64{60, 110, 110}, Sum: 15}
	d := now.Minus(prev)
	if d.Count() != 100 || d.Sum != 14 {
		t.Fatalf("count %d sum %g, want 100 and 14", d.Count(), d.Sum)
	}
	for _, tc := range []struct{ q, want float64 }{{0.5, 0.1}, {0.95, 0.19}, {0.25, 0.05}} {
		if got := d.Quantile(tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("q%g = %g, want %g", tc.q, got, tc.want)
		}
	}
	if !math.IsNaN((Histogram{}).Quantile(0.95)) {
		t.Error("an empty histogram has a quantile")
	}
	// A bucket that went down (a restarted source) counts from zero.
	if r := prev.Minus(now); r.Count() != 0 || r.Sum != 0 {
		t.Errorf("restart: %+v", r)
	}
}
