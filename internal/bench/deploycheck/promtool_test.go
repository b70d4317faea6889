package deploycheck_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPromtool runs promtool over deploy/prometheus: the rule files are
// valid, their unit tests pass, the configuration is valid. Skipped
// without promtool unless PROMTOOL_REQUIRE=1 (CI installs Debian's
// prometheus package).
func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("PROMTOOL_REQUIRE") == "1" {
			t.Fatal("PROMTOOL_REQUIRE=1 but promtool is not installed")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	dir := filepath.Join(root, "deploy/prometheus")
	glob := func(p string) []string {
		m, err := filepath.Glob(filepath.Join(dir, p))
		if err != nil || len(m) == 0 {
			t.Fatalf("no %s (%v)", p, err)
		}
		for i := range m {
			m[i], _ = filepath.Rel(dir, m[i])
		}
		return m
	}
	for _, args := range [][]string{
		append([]string{"check", "rules"}, glob("rules/*.yml")...),
		append([]string{"test", "rules"}, glob("tests/*.yml")...),
		{"check", "config", "--syntax-only", "prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// TestPromtoolCatchesABrokenRule: the unit tests would fail on a rule that
// does not fire — the check can fail.
func TestPromtoolCatchesABrokenRule(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("PROMTOOL_REQUIRE") == "1" {
			t.Fatal("PROMTOOL_REQUIRE=1 but promtool is not installed")
		}
		t.Skip("promtool not installed")
	}
	dir := t.TempDir()
	must := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	must("r.yml", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: m > 10\n        labels: {severity: warning}\n")
	must("t.yml", "rule_files: [r.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: m\n        values: 5x10\n"+
		"    alert_rule_test:\n      - eval_time: 5m\n        alertname: A\n        exp_alerts:\n          - exp_labels: {severity: warning}\n")
	cmd := exec.Command(promtool, "test", "rules", "t.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("promtool passed a test of an alert that cannot fire:\n%s", out)
	}
}
