package deploycheck_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/staffcontrol/staffcontrol/internal/bench/deploycheck"
)

// root is the repository's root from this package's directory.
const root = "../../.."

// rule is one rule of deploy/prometheus/rules.
type rule struct {
	File, Alert, Record, Expr string
	Labels, Annotations       map[string]string
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "deploy/prometheus/rules/*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files (%v)", err)
	}
	var out []rule
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Rules []struct {
					Alert, Record, Expr string
					Labels, Annotations map[string]string
				}
			}
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				out = append(out, rule{File: filepath.Base(f), Alert: r.Alert, Record: r.Record, Expr: r.Expr, Labels: r.Labels, Annotations: r.Annotations})
			}
		}
	}
	return out
}

// use is one metric name an artefact names, and where.
type use struct{ Name, Where string }

// ruleUses are the names the rules' expressions name.
func ruleUses(rules []rule) []use {
	var out []use
	for _, r := range rules {
		for _, n := range deploycheck.Names(r.Expr) {
			out = append(out, use{n, r.File + ": " + r.Alert + r.Record})
		}
	}
	return out
}

// dashboardUses are the names every dashboard's panels (rows' nested
// panels too) and template variables name.
func dashboardUses(t *testing.T) []use {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "deploy/grafana/dashboards/*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards (%v)", err)
	}
	type panel struct {
		Title   string
		Targets []struct{ Expr string }
		Panels  json.RawMessage
	}
	var out []use
	var walk func(file string, raw json.RawMessage)
	walk = func(file string, raw json.RawMessage) {
		var ps []panel
		if len(raw) == 0 {
			return
		}
		if err := json.Unmarshal(raw, &ps); err != nil {
			t.Fatalf("%s: panels: %v", file, err)
		}
		for _, p := range ps {
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: panel %q has a target without expr", file, p.Title)
				}
				for _, n := range deploycheck.Names(tg.Expr) {
					out = append(out, use{n, file + ": " + p.Title})
				}
			}
			walk(file, p.Panels)
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			UID        string
			Title      string
			Panels     json.RawMessage
			Templating struct {
				List []struct {
					Name       string
					Definition string
				}
			}
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: no uid or title", f)
		}
		walk(filepath.Base(f), d.Panels)
		for _, v := range d.Templating.List {
			if expr, ok := labelValuesExpr(v.Definition); ok {
				for _, n := range deploycheck.Names(expr) {
					out = append(out, use{n, filepath.Base(f) + ": variable " + v.Name})
				}
			}
		}
	}
	return out
}

// labelValuesExpr is the selector of a label_values(selector, label) query.
func labelValuesExpr(q string) (string, bool) {
	q = strings.TrimSpace(q)
	if !strings.HasPrefix(q, "label_values(") || !strings.HasSuffix(q, ")") {
		return "", false
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(q, "label_values("), ")")
	if i := strings.LastIndexByte(inner, ','); i >= 0 {
		return inner[:i], true
	}
	return inner, true
}

// missing returns the uses whose name is not exported: exported holds
// the series names (a histogram's _bucket, _sum and _count, a summary's
// _sum and _count, beside the family's name); a recording rule's name, up,
// ALERTS and the Prometheus server's own prometheus_* series (job
// prometheus) count as exported.
func missing(uses []use, exported map[string]bool, recorded []string) []use {
	var out []use
	for _, u := range uses {
		n := u.Name
		if !exported[n] && !slices.Contains(recorded, n) && n != "up" && n != "ALERTS" && !strings.HasPrefix(n, "prometheus_") {
			out = append(out, u)
		}
	}
	return out
}

// TestMissingFindsUnexportedNames proves the check can fail.
func TestMissingFindsUnexportedNames(t *testing.T) {
	t.Parallel()
	exported := map[string]bool{"http_requests_total": true}
	addSeries(exported, "ingest_write_seconds", "histogram")
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`increase(foo_bar_total[5m]) > 0`, []string{"foo_bar_total"}},
		{`sum(rate(http_requests_total[5m]))`, nil},
		{`histogram_quantile(0.95, rate(ingest_write_seconds_bucket[5m]))`, nil},
		{`rate(ingest_write_seconds_count[5m]) / rate(ingest_write_seconds_sum[5m])`, nil},
		{`rate(http_requests_total_bucket[5m])`, []string{"http_requests_total_bucket"}},
		{`job_route_code:http_requests:rate5m > 0 and up == 1 and prometheus_ready`, nil},
		{`ingest_write_second_bucket + count(ALERTS)`, []string{"ingest_write_second_bucket"}},
	} {
		var uses []use
		for _, n := range deploycheck.Names(c.expr) {
			uses = append(uses, use{n, "test"})
		}
		var got []string
		for _, u := range missing(uses, exported, []string{"job_route_code:http_requests:rate5m"}) {
			got = append(got, u.Name)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: missing %q, want %q", c.expr, got, c.want)
		}
	}
}

var headingRE = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)

// slugs are GitHub's anchors of a Markdown file's headings.
func slugs(md string) map[string]bool {
	out := map[string]bool{}
	for _, m := range headingRE.FindAllStringSubmatch(md, -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(m[1])) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}

// TestAlertRulesShape: every alert has a severity (warning or critical),
// a summary, a description and a runbook_url pointing at a heading of
// docs/operations.md; every alert has a unit test and a row in the docs'
// Alerts table, and the table names no alert the files lack.
func TestAlertRulesShape(t *testing.T) {
	t.Parallel()
	rules := loadRules(t)
	ops, err := os.ReadFile(filepath.Join(root, "docs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := slugs(string(ops))
	tests := map[string]bool{}
	tfiles, _ := filepath.Glob(filepath.Join(root, "deploy/prometheus/tests/*.yml"))
	for _, f := range tfiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^\s*alertname:\s*(\S+)`).FindAllStringSubmatch(string(b), -1) {
			tests[m[1]] = true
		}
	}
	section := string(ops)
	if i := strings.Index(section, "\n## Alerts\n"); i >= 0 {
		section = section[i+1:]
		if j := strings.Index(section[3:], "\n## "); j >= 0 {
			section = section[:j+3]
		}
	} else {
		t.Fatal(`docs/operations.md has no "## Alerts" section`)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\| ([A-Z][A-Za-z0-9]+) \|`).FindAllStringSubmatch(section, -1) {
		if m[1] != "Alert" {
			documented[m[1]] = true
		}
	}
	names := map[string]bool{}
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		if names[r.Alert] {
			t.Errorf("%s: alert %s defined twice", r.File, r.Alert)
		}
		names[r.Alert] = true
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: %s: severity %q, want warning or critical", r.File, r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: %s: no %s annotation", r.File, r.Alert, a)
			}
		}
		const base = "https://github.com/staffcontrol/staffcontrol/blob/main/docs/operations.md#"
		if u := r.Annotations["runbook_url"]; !strings.HasPrefix(u, base) || !anchors[strings.TrimPrefix(u, base)] {
			t.Errorf("%s: %s: runbook_url %q is not a heading of docs/operations.md", r.File, r.Alert, u)
		}
		if !tests[r.Alert] {
			t.Errorf("%s: %s has no promtool unit test in deploy/prometheus/tests", r.File, r.Alert)
		}
		if !documented[r.Alert] {
			t.Errorf("%s: %s has no row in docs/operations.md \"Alerts\"", r.File, r.Alert)
		}
	}
	for a := range documented {
		if !names[a] {
			t.Errorf("docs/operations.md \"Alerts\" lists %s, which no rule file defines", a)
		}
	}
}

// addSeries adds the series names of a metric family of type typ
// (Prometheus' text format names: counter, gauge, histogram, summary,
// untyped) to names.
func addSeries(names map[string]bool, family, typ string) {
	names[family] = true
	switch typ {
	case "histogram":
		names[family+"_bucket"], names[family+"_sum"], names[family+"_count"] = true, true, true
	case "summary":
		names[family+"_sum"], names[family+"_count"] = true, true
	}
}

// recordedNames are the recording rules' names.
func recordedNames(rules []rule) []string {
	var out []string
	for _, r := range rules {
		if r.Record != "" {
			out = append(out, r.Record)
		}
	}
	return out
}

// report formats missing uses, one per line.
func report(ms []use) string {
	var lines []string
	for _, m := range ms {
		lines = append(lines, fmt.Sprintf("  %s (%s)", m.Name, m.Where))
	}
	sort.Strings(lines)
	return strings.Join(slices.Compact(lines), "\n")
}
