package scenario

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Limits are the seed's thresholds.
type Limits struct {
	// RequestP95 bounds the 95th percentile of request latency
	// (http_req_duration p(95)<400).
	RequestP95 time.Duration `json:"request_p95_ns"`
	// FailureRate bounds failed requests over all (http_req_failed
	// rate<0.005).
	FailureRate float64 `json:"failure_rate"`
	// WriteP95 bounds the 95th percentile of the Agent API's batch write
	// (timescale_write_duration p(95)<200).
	WriteP95 time.Duration `json:"write_p95_ns"`
	// QueueDepth bounds the command queue's depth (queue_depth
	// max<10000).
	QueueDepth int64 `json:"queue_depth"`
	// BufferUsage bounds a gateway's buffer usage (buffer_usage
	// max<0.80).
	BufferUsage float64 `json:"buffer_usage"`
}

// SeedLimits are the thresholds of the seed's k6 configuration.
func SeedLimits() Limits {
	return Limits{RequestP95: 400 * time.Millisecond, FailureRate: 0.005, WriteP95: 200 * time.Millisecond, QueueDepth: 10000, BufferUsage: 0.80}
}

// Second is one second of a run. Latencies are milliseconds; a
// percentile of a second without samples is null.
type Second struct {
	T int `json:"t"`
	// VUs is the most virtual users this second: started and not
	// stopped (ramping-vus) or running an iteration (arrival rates).
	VUs      int `json:"vus"`
	Requests int `json:"requests"`
	Failures int `json:"failures"`
	Dropped  int `json:"dropped"`
	// Interrupted is iterations cut by the end of the run.
	Interrupted int      `json:"interrupted"`
	Events      int      `json:"events"`
	P50         *float64 `json:"p50_ms"`
	P95         *float64 `json:"p95_ms"`
	P99         *float64 `json:"p99_ms"`
	// WriteP95 is the replicas' ingest write p95 over this second's
	// writes (null: none).
	WriteP95 *float64 `json:"write_p95_ms"`
	// Writes is the batches the replicas wrote this second.
	Writes uint64 `json:"writes"`
	// QueueDepth is the database's count of unfinished commands.
	QueueDepth int64 `json:"queue_depth"`
	// BufferUsage is the real gateway's buffer usage ratio (0..1).
	BufferUsage float64 `json:"buffer_usage"`
	// BufferData and BufferFilesystem are its two parts, from the
	// gateway's /health/details: bytes ÷ buffer.max_size, and the
	// fullness of the filesystem holding the buffer (null: not read).
	BufferData       *float64 `json:"buffer_data_ratio"`
	BufferFilesystem *float64 `json:"buffer_filesystem_usage"`
}

// Threshold is one checked threshold.
type Threshold struct {
	// Name is the seed's metric name.
	Name string `json:"name"`
	// Expr is the seed's expression.
	Expr string `json:"expr"`
	// Source says where the value was measured.
	Source string `json:"source"`
	// Value and Limit are in Unit.
	Value float64 `json:"value"`
	Limit float64 `json:"limit"`
	Unit  string  `json:"unit"`
	// Samples is how many observations the value rests on; a threshold
	// without any fails (nothing was measured).
	Samples int64 `json:"samples"`
	// Pass is Value < Limit with samples.
	Pass bool `json:"pass"`
}

// Totals sums a run.
type Totals struct {
	Requests    int64   `json:"requests"`
	Failures    int64   `json:"failures"`
	Dropped     int64   `json:"dropped_iterations"`
	Interrupted int64   `json:"interrupted_iterations"`
	Events      int64   `json:"events"`
	Writes      uint64  `json:"writes"`
	RPS         float64 `json:"requests_per_second"`
	EPS         float64 `json:"events_per_second"`
	P50         float64 `json:"p50_ms"`
	P95         float64 `json:"p95_ms"`
	P99         float64 `json:"p99_ms"`
	MaxVUs      int     `json:"max_vus"`
}

// Result is a run's outcome, written as JSON.
type Result struct {
	Scenario   Scenario    `json:"scenario"`
	Scale      float64     `json:"scale"`
	Started    time.Time   `json:"started"`
	Elapsed    float64     `json:"elapsed_seconds"`
	Replicas   int         `json:"replicas"`
	LoadBefore string      `json:"loadavg_before"`
	LoadAfter  string      `json:"loadavg_after"`
	Totals     Totals      `json:"totals"`
	Thresholds []Threshold `json:"thresholds"`
	Pass       bool        `json:"pass"`
	Seconds    []Second    `json:"seconds"`
	// Notes are what a reader needs to interpret the figures.
	Notes []string `json:"notes,omitempty"`

	depthSamples, bufferSamples int
}

// percentile is p (0..100) of sorted values (nearest rank); NaN when empty.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ptr(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

// check fills r.Thresholds and r.Pass from the totals and the series;
// writeP95 is the whole run's write p95 in seconds over writes samples.
func (r *Result) check(l Limits, writeP95 float64, writes uint64) {
	var maxDepth int64
	maxUsage := 0.0
	for _, s := range r.Seconds {
		maxDepth = max(maxDepth, s.QueueDepth)
		maxUsage = max(maxUsage, s.BufferUsage)
	}
	rate := 0.0
	if r.Totals.Requests > 0 {
		rate = float64(r.Totals.Failures) / float64(r.Totals.Requests)
	}
	wp := writeP95 * 1000
	if math.IsNaN(wp) {
		wp = 0
	}
	r.Thresholds = []Threshold{
		{Name: "http_req_duration", Expr: "p(95)<400", Source: "client-side, every request of the run", Value: r.Totals.P95, Limit: ms(l.RequestP95), Unit: "ms", Samples: r.Totals.Requests},
		{Name: "http_req_failed", Expr: "rate<0.005", Source: "client-side: network errors and answers ≥ 400", Value: rate, Limit: l.FailureRate, Unit: "ratio", Samples: r.Totals.Requests},
		{Name: "timescale_write_duration", Expr: "p(95)<200", Source: "the replicas' ingest_write_seconds histograms (delta over the run)", Value: wp, Limit: ms(l.WriteP95), Unit: "ms", Samples: int64(writes)},
		{Name: "queue_depth", Expr: "max<10000", Source: "PostgreSQL: gateway_commands pending or delivered, sampled every second", Value: float64(maxDepth), Limit: float64(l.QueueDepth), Unit: "commands", Samples: int64(r.depthSamples)},
		{Name: "buffer_usage", Expr: "max<0.80", Source: "the real gateway's gateway_buffer_usage_ratio, sampled every second", Value: maxUsage, Limit: l.BufferUsage, Unit: "ratio", Samples: int64(r.bufferSamples)},
	}
	r.Pass = true
	for i := range r.Thresholds {
		t := &r.Thresholds[i]
		t.Pass = t.Samples > 0 && t.Value < t.Limit
		r.Pass = r.Pass && t.Pass
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Write puts the result as <dir>/<name>-<time>.json and the charts beside
// it as .html; it returns both paths.
func (r *Result) Write(dir string) (jsonPath, htmlPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("scenario: output directory: %w", err)
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%s", r.Scenario.Name, r.Started.UTC().Format("20060102T150405Z")))
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("scenario: result: %w", err)
	}
	if err := os.WriteFile(base+".json", append(data, '\n'), 0o644); err != nil {
		return "", "", fmt.Errorf("scenario: write result: %w", err)
	}
	if err := os.WriteFile(base+".html", []byte(r.HTML()), 0o644); err != nil {
		return "", "", fmt.Errorf("scenario: write charts: %w", err)
	}
	return base + ".json", base + ".html", nil
}

// summarise fills the totals from the recorder's buckets, which also
// become the series' request columns.
func (r *Result) summarise(rec *Recorder, n int) {
	var all []float64
	for i := range n {
		b := rec.second(i)
		sort.Float64s(b.latencies)
		all = append(all, b.latencies...)
		s := &r.Seconds[i]
		s.T, s.VUs, s.Requests, s.Failures, s.Dropped, s.Interrupted, s.Events = i, b.vus, b.requests, b.failures, b.dropped, b.interrupted, b.events
		r.Totals.Interrupted += int64(b.interrupted)
		s.P50, s.P95, s.P99 = ptr(percentile(b.latencies, 50)), ptr(percentile(b.latencies, 95)), ptr(percentile(b.latencies, 99))
		r.Totals.Requests += int64(b.requests)
		r.Totals.Failures += int64(b.failures)
		r.Totals.Dropped += int64(b.dropped)
		r.Totals.Events += int64(b.events)
		r.Totals.MaxVUs = max(r.Totals.MaxVUs, b.vus)
	}
	sort.Float64s(all)
	nz := func(v float64) float64 {
		if math.IsNaN(v) {
			return 0
		}
		return v
	}
	r.Totals.P50, r.Totals.P95, r.Totals.P99 = nz(percentile(all, 50)), nz(percentile(all, 95)), nz(percentile(all, 99))
	if r.Elapsed > 0 {
		r.Totals.RPS = float64(r.Totals.Requests) / r.Elapsed
		r.Totals.EPS = float64(r.Totals.Events) / r.Elapsed
	}
}
