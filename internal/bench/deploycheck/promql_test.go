package deploycheck_test

import (
	"slices"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/bench/deploycheck"
)

func TestNames(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`up == 0`, []string{"up"}},
		{`gateway_buffer_usage_ratio{instance="$gateway"} > 0.8`, []string{"gateway_buffer_usage_ratio"}},
		{`sum by (instance, reason) (increase(gateway_events_dropped_total[1h])) > 0`, []string{"gateway_events_dropped_total"}},
		{`sum(rate(a_total{code=~"5.."}[5m])) by (job) / ignoring(code) group_left(route) sum(rate(b_total[5m]))`, []string{"a_total", "b_total"}},
		{`histogram_quantile(0.95, sum by (le) (rate(x_seconds_bucket{route=~"/v2/ingest/.*"}[5m]))) > 0.5`, []string{"x_seconds_bucket"}},
		{`time() - max(retention_last_success_timestamp_seconds) > 2 * 3600`, []string{"retention_last_success_timestamp_seconds"}},
		{`a or b and on(x) c unless d offset 5m`, []string{"a", "b", "c", "d"}},
		{`job:http_requests:rate5m{job="x"} * 1e3 + 0x1f - .5 + 1.5e-3 + Inf`, []string{"job:http_requests:rate5m"}},
		{`{__name__="hidden"} + rate(y_total[$__rate_interval]) + ${var}`, []string{"y_total"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`count(ALERTS{alertstate="firing"}) or vector(0)`, []string{"ALERTS"}},
		{`max_over_time(q[1h:5m]) # a comment naming not_a_metric`, []string{"q"}},
		{`sum without (instance) (z) + z`, []string{"z"}},
		{`bool_metric > bool 1`, []string{"bool_metric"}},
		{`"unterminated`, nil},
		{`m{a="}"} + n{b='{'}`, []string{"m", "n"}},
	} {
		if got := deploycheck.Names(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("Names(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
}

// FuzzNames: any input ends, and every name returned is a valid metric
// name that occurs in the input.
func FuzzNames(f *testing.F) {
	for _, s := range []string{`sum by (a) (rate(x_total{b="c"}[5m]))`, `"\"`, "{[", "$", "1e", "a(", "`x`"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, n := range deploycheck.Names(s) {
			if n == "" {
				t.Fatal("empty name")
			}
			for i := 0; i < len(n); i++ {
				c := n[i]
				ok := c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9'
				if !ok {
					t.Fatalf("name %q from %q", n, s)
				}
			}
		}
	})
}
