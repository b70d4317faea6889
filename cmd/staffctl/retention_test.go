package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestRetentionCommands: policies set and refused naming the field, a dry
// run and a run as the ingest role, and the listing of both.
func TestRetentionCommands(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL, "STORAGE_BASE_PATH": t.TempDir()}
	must := mustStaffctl(t, env)
	must("org", "create", "--name", "Acme")
	if out := must("retention", "policy", "--org", "acme", "--type", "screenshots", "--days", "3", "--action", "archive"); !strings.Contains(out, "keeps screenshots 3 days (archive)") {
		t.Fatalf("policy: %s", out)
	}
	if out := must("retention", "policy", "--type", "visited_sites", "--days", "7"); !strings.Contains(out, "the platform default keeps visited_sites 7 days (delete)") {
		t.Fatalf("default policy: %s", out)
	}
	out := must("retention", "run", "--dry-run")
	if !regexp.MustCompile(`^run \d+ succeeded in \S+: would delete 0 rows \(active_windows 0, `).MatchString(out) {
		t.Fatalf("dry run: %s", out)
	}
	if out := must("retention", "run", "--batch-size", "100"); !strings.Contains(out, "succeeded") || !strings.Contains(out, ": deleted 0 rows") {
		t.Fatalf("run: %s", out)
	}
	out = must("retention", "runs")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.Contains(lines[1], "false") || !strings.Contains(lines[2], "true") || strings.Count(out, "succeeded") != 2 {
		t.Fatalf("runs:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"retention", "policy", "--type", "screenshot", "--days", "3"}, env, `resource_type: "screenshot" is not a time series`},
		{[]string{"retention", "policy", "--type", "screenshots", "--days", "0"}, env, "retention_days: must be between 1 and 3650"},
		{[]string{"retention", "policy", "--type", "screenshots", "--days", "3", "--action", "keep"}, env, "action: must be delete or archive"},
		{[]string{"retention", "run"}, map[string]string{"DATABASE_URL": db.AdminURL}, "the file store is required"},
		{[]string{"retention", "purge"}, env, "unknown subcommand"},
	} {
		if _, _, err := staffctl(t, tc.env, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
