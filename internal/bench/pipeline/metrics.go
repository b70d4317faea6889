package pipeline

import (
	"context"
	"fmt"
	"math"
	"net/http"

	"github.com/staffcontrol/staffcontrol/internal/bench/stack"
)

// Gateway metrics the benchmark reads from /metrics.
const (
	// metricBacklog is the buffer's rows by class: events acknowledged to
	// agents and not yet acknowledged by the cloud (the backlog).
	metricBacklog = "gateway_buffer_rows"
	// metricUploaded counts the events the cloud acknowledged (stored).
	metricUploaded = "gateway_uplink_events_total"
	// metricUpload is the uplink's request latencies (where the cloud's
	// time shows), metricCommit the buffer's group commits (where the
	// gateway's disk time shows); both histograms.
	metricUpload = "gateway_uplink_latency_seconds"
	metricCommit = "gateway_buffer_commit_seconds"
)

// gatewayMetrics is one reading of the gateway's /metrics.
type gatewayMetrics struct {
	backlog  int64 // sum of gateway_buffer_rows over classes
	uploaded int64 // sum of gateway_uplink_events_total over streams
	// uploadSeconds and uploads sum the uplink's request latencies and
	// count the requests; commitSeconds and commits the same for the
	// buffer's group commits.
	uploadSeconds, commitSeconds float64
	uploads, commits             int64
}

// scrape reads the gateway's /metrics at base.
func scrape(ctx context.Context, client *http.Client, base string) (gatewayMetrics, error) {
	fams, err := stack.Scrape(ctx, client, base)
	if err != nil {
		return gatewayMetrics{}, fmt.Errorf("pipeline: gateway metrics: %w", err)
	}
	return readGateway(fams)
}

// readGateway takes the benchmark's numbers from the gateway's metric
// families; a value that is not finite is an error.
func readGateway(fams stack.Families) (gatewayMetrics, error) {
	upload, commit := fams.Histogram(metricUpload), fams.Histogram(metricCommit)
	backlog, uploaded := fams.Sum(metricBacklog), fams.Sum(metricUploaded)
	for name, v := range map[string]float64{metricBacklog: backlog, metricUploaded: uploaded, metricUpload + "_sum": upload.Sum, metricCommit + "_sum": commit.Sum} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return gatewayMetrics{}, fmt.Errorf("pipeline: gateway metrics: %s is %v", name, v)
		}
	}
	return gatewayMetrics{backlog: int64(backlog), uploaded: int64(uploaded),
		uploadSeconds: upload.Sum, uploads: int64(upload.Count()),
		commitSeconds: commit.Sum, commits: int64(commit.Count())}, nil
}
