package scenario

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// line is one series of a chart; NaN values are gaps.
type line struct {
	name   string
	color  string
	values []float64
}

// limit is a horizontal threshold line.
type limit struct {
	name  string
	value float64
}

// chart draws lines over the run's seconds as an inline SVG.
func chart(title, unit string, lines []line, limits []limit) string {
	const w, h, left, right, top, bottom = 900.0, 260.0, 60.0, 20.0, 30.0, 30.0
	n, hi := 0, 0.0
	for _, l := range lines {
		n = max(n, len(l.values))
		for _, v := range l.values {
			if !math.IsNaN(v) {
				hi = max(hi, v)
			}
		}
	}
	for _, l := range limits {
		hi = max(hi, l.value*1.05)
	}
	if hi <= 0 {
		hi = 1
	}
	n = max(n, 2)
	x := func(i int) float64 { return left + (w-left-right)*float64(i)/float64(n-1) }
	y := func(v float64) float64 { return top + (h-top-bottom)*(1-v/hi) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="11">`, w, h, w, h)
	fmt.Fprintf(&b, `<text x="%g" y="16" font-size="13" font-weight="bold">%s</text>`, left, html.EscapeString(title))
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#bbb"/>`, left, top, w-left-right, h-top-bottom)
	for k := 0; k <= 4; k++ {
		v := hi * float64(k) / 4
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="end">%s</text>`, left-4, y(v)+4, fmtNum(v))
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="#eee"/>`, left, w-right, y(v), y(v))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="end">%s</text>`, left-4, top-8, html.EscapeString(unit))
	for k := 0; k <= 5; k++ {
		i := (n - 1) * k / 5
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%ds</text>`, x(i), h-bottom+14, i)
	}
	for _, l := range limits {
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="#d00" stroke-dasharray="6 4"/>`, left, w-right, y(l.value), y(l.value))
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="end" fill="#d00">%s</text>`, w-right-4, y(l.value)-4, html.EscapeString(l.name))
	}
	lx := left + 200
	for _, l := range lines {
		var pts []string
		flush := func() {
			if len(pts) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, l.color, strings.Join(pts, " "))
			}
			pts = pts[:0]
		}
		for i, v := range l.values {
			if math.IsNaN(v) {
				flush()
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
		}
		flush()
		fmt.Fprintf(&b, `<rect x="%g" y="8" width="10" height="10" fill="%s"/><text x="%g" y="17">%s</text>`, lx, l.color, lx+14, html.EscapeString(l.name))
		lx += 30 + 7*float64(len(l.name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func fmtNum(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func val(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// HTML is a self-contained page (inline SVG, no script): the thresholds
// table and charts of latency, throughput, queue depth and buffer usage
// over time with the thresholds drawn.
func (r *Result) HTML() string {
	n := len(r.Seconds)
	col := func(f func(Second) float64) []float64 {
		out := make([]float64, n)
		for i, s := range r.Seconds {
			out[i] = f(s)
		}
		return out
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>", html.EscapeString(r.Scenario.Name))
	b.WriteString(`<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.pass{color:#080}.fail{color:#c00;font-weight:bold}</style></head><body>`)
	verdict := `<span class="pass">PASS</span>`
	if !r.Pass {
		verdict = `<span class="fail">FAIL</span>`
	}
	fmt.Fprintf(&b, "<h1>%s — %s</h1><p>%s</p>", html.EscapeString(r.Scenario.Name), verdict, html.EscapeString(r.Scenario.Description))
	fmt.Fprintf(&b, "<p>Executor %s, scale %g (%s), %d Agent API replicas, started %s, %.1f s; load average before %s, after %s.</p>",
		html.EscapeString(string(r.Scenario.Executor)), r.Scale, r.Scenario.Duration().Round(time.Second), r.Replicas, r.Started.UTC().Format(time.RFC3339), r.Elapsed,
		html.EscapeString(r.LoadBefore), html.EscapeString(r.LoadAfter))
	fmt.Fprintf(&b, "<p>%d requests (%.1f/s), %d failed, %d dropped and %d interrupted iterations, %d events (%.0f/s), latency p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, at most %d virtual users busy.</p>",
		r.Totals.Requests, r.Totals.RPS, r.Totals.Failures, r.Totals.Dropped, r.Totals.Interrupted, r.Totals.Events, r.Totals.EPS, r.Totals.P50, r.Totals.P95, r.Totals.P99, r.Totals.MaxVUs)
	b.WriteString("<table><tr><th>threshold</th><th>value</th><th>limit</th><th>samples</th><th>result</th><th>source</th></tr>")
	for _, t := range r.Thresholds {
		res := `<span class="pass">pass</span>`
		if !t.Pass {
			res = `<span class="fail">FAIL</span>`
		}
		fmt.Fprintf(&b, "<tr><td>%s %s</td><td>%s %s</td><td>%s</td><td>%d</td><td>%s</td><td>%s</td></tr>", html.EscapeString(t.Name), html.EscapeString(t.Expr),
			fmtNum(t.Value), html.EscapeString(t.Unit), fmtNum(t.Limit), t.Samples, res, html.EscapeString(t.Source))
	}
	b.WriteString("</table>")
	l := r.Thresholds
	lim := func(i int) []limit {
		if i < len(l) {
			return []limit{{name: l[i].Name + " " + l[i].Expr, value: l[i].Limit}}
		}
		return nil
	}
	b.WriteString("<h2>Latency</h2>")
	b.WriteString(chart("Request latency per second", "ms", []line{
		{"p50", "#1f77b4", col(func(s Second) float64 { return val(s.P50) })},
		{"p95", "#ff7f0e", col(func(s Second) float64 { return val(s.P95) })},
		{"p99", "#9467bd", col(func(s Second) float64 { return val(s.P99) })}}, lim(0)))
	b.WriteString(chart("Agent API batch write p95 per second", "ms", []line{
		{"write p95", "#2ca02c", col(func(s Second) float64 { return val(s.WriteP95) })}}, lim(2)))
	b.WriteString("<h2>Throughput</h2>")
	b.WriteString(chart("Requests per second", "req/s", []line{
		{"requests", "#1f77b4", col(func(s Second) float64 { return float64(s.Requests) })},
		{"failures", "#d62728", col(func(s Second) float64 { return float64(s.Failures) })},
		{"dropped", "#7f7f7f", col(func(s Second) float64 { return float64(s.Dropped) })},
		{"virtual users busy", "#bcbd22", col(func(s Second) float64 { return float64(s.VUs) })}}, nil))
	b.WriteString(chart("Events per second", "events/s", []line{
		{"events sent", "#17becf", col(func(s Second) float64 { return float64(s.Events) })}}, nil))
	b.WriteString("<h2>Queue and buffer</h2>")
	b.WriteString(chart("Command queue depth (database)", "commands", []line{
		{"queue depth", "#8c564b", col(func(s Second) float64 { return float64(s.QueueDepth) })}}, lim(3)))
	b.WriteString(chart("Real gateway's buffer usage", "ratio", []line{
		{"buffer usage", "#e377c2", col(func(s Second) float64 { return s.BufferUsage })},
		{"of it: data ÷ max size", "#2ca02c", col(func(s Second) float64 { return val(s.BufferData) })},
		{"of it: filesystem fullness", "#7f7f7f", col(func(s Second) float64 { return val(s.BufferFilesystem) })}}, lim(4)))
	if len(r.Notes) > 0 {
		b.WriteString("<h2>Notes</h2><ul>")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "<li>%s</li>", html.EscapeString(n))
		}
		b.WriteString("</ul>")
	}
	b.WriteString("</body></html>\n")
	return b.String()
}
