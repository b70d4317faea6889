package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Gateway metrics the benchmark reads from /metrics.
const (
	// metricBacklog is the buffer's rows by class: events acknowledged to
	// agents and not yet acknowledged by the cloud (the backlog).
	metricBacklog = "gateway_buffer_rows"
	// metricUploaded counts the events the cloud acknowledged (stored).
	metricUploaded = "gateway_uplink_events_total"
	// metricUpload* are the uplink's request latencies (where the cloud's
	// time shows), metricCommit* the buffer's group commits (where the
	// gateway's disk time shows).
	metricUploadSum   = "gateway_uplink_latency_seconds_sum"
	metricUploadCount = "gateway_uplink_latency_seconds_count"
	metricCommitSum   = "gateway_buffer_commit_seconds_sum"
	metricCommitCount = "gateway_buffer_commit_seconds_count"
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return gatewayMetrics{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return gatewayMetrics{}, fmt.Errorf("pipeline: gateway metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return gatewayMetrics{}, fmt.Errorf("pipeline: gateway metrics: status %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return gatewayMetrics{}, fmt.Errorf("pipeline: gateway metrics: %w", err)
	}
	sums, err := sumSamples(raw, metricBacklog, metricUploaded, metricUploadSum, metricUploadCount, metricCommitSum, metricCommitCount)
	if err != nil {
		return gatewayMetrics{}, err
	}
	return gatewayMetrics{backlog: int64(sums[metricBacklog]), uploaded: int64(sums[metricUploaded]),
		uploadSeconds: sums[metricUploadSum], uploads: int64(sums[metricUploadCount]),
		commitSeconds: sums[metricCommitSum], commits: int64(sums[metricCommitCount])}, nil
}

// sumSamples parses the Prometheus text exposition format in raw and sums
// the samples of each named metric over all label sets. Comments and other
// metrics are skipped; a sample of a named metric whose value does not
// parse, or is not finite, is an error.
func sumSamples(raw []byte, names ...string) (map[string]float64, error) {
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ \t"); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		want := false
		for _, n := range names {
			want = want || n == name
		}
		if !want {
			continue
		}
		if strings.HasPrefix(rest, "{") {
			end := labelsEnd(rest)
			if end < 0 {
				return nil, fmt.Errorf("pipeline: metrics: unterminated labels in %q", line)
			}
			rest = rest[end+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("pipeline: metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("pipeline: metrics: bad value in %q", line)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("pipeline: metrics: %w", err)
	}
	return out, nil
}

// labelsEnd is the index of the '}' closing the label set s opens,
// honouring quoted values with escapes, or -1.
func labelsEnd(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '}':
			return i
		}
	}
	return -1
}
