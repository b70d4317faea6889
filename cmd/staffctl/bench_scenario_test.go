package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchScenarioRefusesBadInput: an unknown name lists the scenarios;
// a bad flag value names the flag; both exit 2.
func TestBenchScenarioRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "scenario"}, "batch_ingestion, queue_backlog, timescale_stress"},
		{[]string{"bench", "scenario", "nope"}, "batch_ingestion, queue_backlog, timescale_stress"},
		{[]string{"bench", "scenario", "queue_backlog", "--scale", "0"}, "--scale"},
		{[]string{"bench", "scenario", "queue_backlog", "--scale", "x"}, "-scale"},
		{[]string{"bench", "scenario", "queue_backlog", "--replicas", "0"}, "--replicas"},
		{[]string{"bench", "scenario", "queue_backlog", "--out", ""}, "--out"},
		{[]string{"bench", "scenario", "queue_backlog", "extra"}, "extra"},
	} {
		_, stderr, err := staffctl(t, nil, tc.args...)
		if err == nil || exitCode(err) != 2 {
			t.Errorf("%v: err %v (exit %d), want a usage error", tc.args, err, exitCode(err))
			continue
		}
		if !strings.Contains(err.Error()+stderr, tc.want) {
			t.Errorf("%v: %q does not name %q", tc.args, err.Error()+stderr, tc.want)
		}
	}
}

// TestBenchScenarioRuns: a short real run prints a line per second and
// the thresholds' table, writes the JSON and the HTML, and exits non-zero
// exactly when the table shows a failure.
func TestBenchScenarioRuns(t *testing.T) {
	db := pg.NewDatabase(t)
	out := t.TempDir()
	stdout, stderr, err := staffctl(t, nil, "bench", "scenario", "timescale_stress", "--scale", "0.008", "--database-url", db.AdminURL, "--out", out)
	if err != nil && !errors.Is(err, errThresholds) {
		t.Fatalf("%v\n%s\n%s", err, stdout, stderr)
	}
	for _, want := range []string{"http_req_duration p(95)<400", "http_req_failed rate<0.005", "timescale_write_duration p(95)<200", "queue_depth max<10000", "buffer_usage max<0.80", "result: ", "charts: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if failed := strings.Contains(stdout, "FAIL"); failed != (err != nil) {
		t.Errorf("table shows a failure: %v, exit error %v", failed, err)
	}
	if lines := strings.Count(stdout, "\n"); lines < 8 {
		t.Errorf("%d lines of output", lines)
	}
	for _, ext := range []string{"*.json", "*.html"} {
		if m, _ := filepath.Glob(filepath.Join(out, ext)); len(m) != 1 {
			t.Errorf("%s in --out: %v", ext, m)
		} else if fi, err := os.Stat(m[0]); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", m[0], err)
		}
	}
}
