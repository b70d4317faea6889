package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/bench/pipeline"
)

// TestBenchE2EFlags: bad flags fail at start naming the flag (exit 2),
// before anything is started.
func TestBenchE2EFlags(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		args []string
		want string
	}{
		{[]string{"--agents", "0"}, "--agents"},
		{[]string{"--replicas", "0"}, "--replicas"},
		{[]string{"--agent-batch", "5000"}, "--agent-batch"},
		{[]string{"--start-rate", "-1"}, "--start-rate"},
		{[]string{"--step", "-5"}, "--step"},
		{[]string{"--step-duration", "1s"}, "--step-duration"},
		{[]string{"--step-duration", "30s", "--max-duration", "10s"}, "--max-duration"},
		{[]string{"--p99-limit", "0s"}, "--p99-limit"},
		{[]string{"--backlog-window", "1s"}, "--backlog-window"},
		{[]string{"--step-duration", "5s"}, "must be at least --backlog-window"},
		{[]string{"--uplink-batch", "0"}, "--uplink-batch"},
		{[]string{"--copy-workers", "0"}, "--copy-workers"},
		{[]string{"--gateway", "docker"}, "--gateway"},
		{[]string{"--gateway-set", "novalue"}, "gateway-set"},
		{[]string{"--agents", "many"}, "agents"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		args := append([]string{"bench", "e2e"}, b.args...)
		_, _, err := staffctl(t, nil, args...)
		if err == nil || !strings.Contains(err.Error(), b.want) || exitCode(err) != 2 {
			t.Errorf("%v: err = %v (exit %d), want %q with exit 2", b.args, err, exitCode(err), b.want)
		}
	}
}

// TestBenchE2EFlagsParse: good flags reach the options; --step 0 holds the
// rate; --gateway-set names a key as its environment variable.
func TestBenchE2EFlagsParse(t *testing.T) {
	t.Parallel()
	var errb bytes.Buffer
	c, err := parseBenchE2E(env{stderr: &errb}, []string{"--agents", "7", "--step", "0", "--start-rate", "3000", "--step-duration", "5s",
		"--max-duration", "1m", "--gateway-set", "buffer.synchronous=normal", "--gateway-set", "uplink.parallel=4", "--json", "-"})
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
	if o.Agents != 7 || !o.ConstantRate || o.StartRate != 3000 || o.StepDuration != 5*time.Second || o.MaxDuration != time.Minute || c.jsonPath != "-" {
		t.Fatalf("options = %+v", o)
	}
	if o.GatewayEnv["STAFF_GATEWAY_BUFFER_SYNCHRONOUS"] != "normal" || o.GatewayEnv["STAFF_GATEWAY_UPLINK_PARALLEL"] != "4" {
		t.Fatalf("gateway env = %v", o.GatewayEnv)
	}
}

// TestBenchE2ESummaryText: the text summary prints the figures and the
// verdict.
func TestBenchE2ESummaryText(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	printBenchE2E(&b, pipeline.Summary{Sustained: 4000, SustainedTarget: 4000, Ratio: 0.125, Copy: pipeline.CopyResult{Rows: 10, Rate: 32000},
		StopReason: "step 2 (6000 events/s): p99", Steps: []pipeline.StepResult{{Target: 4000, KeptUp: true}, {Target: 6000, Reason: "p99"}},
		Check: pipeline.Check{Acked: 10, Stored: 10, Duplicated: 2}})
	for _, want := range []string{"sustained: 4000 events/s", "raw CopyFrom: 32000 rows/s", "ratio: 0.125", "lost 0, duplicated 2", "kept up", "p99"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}
