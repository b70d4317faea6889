package pipeline

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/staffcontrol/staffcontrol/internal/bench/stack"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
)

// childEnv makes the test binary a gateway process (re-exec), so the crash
// test SIGKILLs a real process without a separate build.
const childEnv = "STAFF_PIPELINE_TEST_GATEWAY"

var pg *pgtest.Server

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := ServeGateway(ctx, os.Getenv, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "gateway:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	pgtest.Main(m, &pg)
}

// TestSIGKILLedGatewayLosesAndDuplicatesNothing: a short run at a constant
// rate whose gateway process is SIGKILLed in the middle and restarted on
// its buffer; the per-id check finds every acknowledged id stored exactly
// once, and acknowledgements happened both before and after the kill.
func TestSIGKILLedGatewayLosesAndDuplicatesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	db := pg.NewDatabase(t)
	t.Setenv(childEnv, "1") // inherited by the gateway processes only
	logger := logtest.New(t)
	var progress []Progress
	sum, err := Run(ctx, Options{DatabaseURL: db.AdminURL, Agents: 4, AgentBatch: 50, StartRate: 800, ConstantRate: true,
		StepDuration: 6 * time.Second, MaxDuration: 12 * time.Second, KillGatewayAfter: 4 * time.Second,
		// The kill stalls acknowledgements for the restart: no latency
		// or rate rule may end the run before the kill's aftermath.
		P99Limit: time.Hour, UplinkBatch: 200, ProbeRows: 1000, CopyWorkers: 1,
		StartGateway: Process([]string{os.Args[0]}, logtest.Writer(t, "gateway")), Logger: logger,
		Progress: func(p Progress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary: stop=%q sustained=%.0f copy=%.0f ratio=%.3f check=%+v kills=%d acked-before-kill=%d steps=%+v",
		sum.StopReason, sum.Sustained, sum.Copy.Rate, sum.Ratio, sum.Check, sum.GatewayKills, sum.AckedBeforeKill, sum.Steps)
	if sum.GatewayKills != 1 {
		t.Fatalf("gateway kills = %d, want 1", sum.GatewayKills)
	}
	if sum.AckedBeforeKill == 0 || sum.Check.Acked <= sum.AckedBeforeKill {
		t.Fatalf("acked %d before the kill and %d in all: the run must acknowledge on both sides of it", sum.AckedBeforeKill, sum.Check.Acked)
	}
	if sum.Check.Lost != 0 || sum.Check.Duplicated != 0 || sum.Check.Unexpected != 0 {
		t.Fatalf("check: %+v, want 0 lost, 0 duplicated, 0 unexpected", sum.Check)
	}
	if sum.Check.Stored < sum.Check.Acked {
		t.Fatalf("stored %d ids < acked %d", sum.Check.Stored, sum.Check.Acked)
	}
	if sum.Copy.Rows != sum.Check.Stored || sum.Copy.Rate <= 0 {
		t.Fatalf("raw CopyFrom %+v, want %d rows at a positive rate", sum.Copy, sum.Check.Stored)
	}
	if len(progress) == 0 {
		t.Fatal("no progress reported")
	}
	// The gateway's /metrics was read (stack.Scrape): its uplink and
	// commit histograms show in some step.
	var uploads, commits bool
	for _, st := range sum.Steps {
		uploads = uploads || (st.Uploads > 0 && st.UploadAvg > 0)
		commits = commits || (st.Commits > 0 && st.CommitAvg > 0)
	}
	if !uploads || !commits {
		t.Fatalf("no step read the gateway's upload (%v) or commit (%v) latencies: %+v", uploads, commits, sum.Steps)
	}
}

// TestCheckCountsLossDuplicationAndStrangers: the check itself detects an
// acknowledged id that is not stored, an id stored twice (the keys are
// (organization_id, id, datetime) per table, so a second row with another
// datetime, in another table, is possible), and an id no agent sent; an
// indeterminate id stored or not is fine.
func TestCheckCountsLossDuplicationAndStrangers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := pg.NewDatabase(t)
	st, err := stack.Start(ctx, stack.Options{DatabaseURL: db.AdminURL, Replicas: 1, PoolSize: 2, Logger: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	org, err := st.NewOrganization(ctx, "Check", "check")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := st.RegisterGateway(ctx, org.ID, "GW-CHECK")
	if err != nil {
		t.Fatal(err)
	}
	gw := uuid.MustParse(reg.ID)
	conn, err := pgx.Connect(ctx, st.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	ids := make([]uuid.UUID, 8)
	str := make([]string, len(ids))
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
		str[i] = ids[i].String()
	}
	// Stored once: 0..3 (acked), 5 (indeterminate), 7 (never sent).
	var tpl copyBatch
	for _, e := range agentsim.SampleEvents(1, 50) {
		tpl[tableOf(e)] = append(tpl[tableOf(e)], e)
	}
	for i, id := range []uuid.UUID{ids[0], ids[1], ids[2], ids[3], ids[5], ids[7]} {
		if err := copyOne(ctx, conn, tpl, []uuid.UUID{id}, int64(i+1), org.ID, gw); err != nil {
			t.Fatal(err)
		}
	}
	// Stored twice: 1 again as a session, another datetime.
	d := int64(1)
	again := copyBatch{2: {{EventID: str[1], Type: protocol.TypeUserSession, AgentUID: "a", ComputerName: "c", UserSID: "S-1-5-21-1",
		SessionType: protocol.SessionLogin, Datetime: time.Now().Add(-time.Hour).UTC(), DurationSeconds: &d}}}
	if err := copyOne(ctx, conn, again, ids[1:2], 100, org.ID, gw); err != nil {
		t.Fatal(err)
	}

	l := NewLedger()
	l.Observe(str[0:5], agentsim.Acked)         // 4 acked and never stored: lost
	l.Observe(str[5:7], agentsim.Indeterminate) // 5 stored, 6 not: both fine
	l.Observe([]string{"not-a-uuid"}, agentsim.Acked)
	got, err := l.Verify(ctx, conn, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := Check{Acked: 5, Indeterminate: 2, Stored: 6, Lost: 1, Duplicated: 1, IndeterminateStored: 1, Unexpected: 1}
	if got != want {
		t.Fatalf("check = %+v, want %+v", got, want)
	}
	if got.OK() {
		t.Fatal("a check with a loss says OK")
	}
}

// TestGrowing: the backlog rule fires on a steady climb over the window,
// not on a short window, a sawtooth or wander of batches in flight, a
// climb slower than its floor (half a batch or 1 % of the offered rate per
// third) or a decline.
func TestGrowing(t *testing.T) {
	t0 := time.Unix(0, 0)
	series := func(f func(i int) int64) []sample {
		var s []sample
		for i := 0; i <= 10; i++ {
			s = append(s, sample{t0.Add(time.Duration(i) * time.Second), f(i)})
		}
		return s
	}
	// The backlogs of run 1 at 14,000 events/s (2026-12-05 08:15, before
	// the rate floor): the pipeline stored what was offered and the
	// backlog drained in 0.4 s, yet each third rose by over half a batch.
	wander := []int64{200, 400, 300, 300, 900, 1000, 800, 1300, 1400, 1500, 1500}
	tests := []struct {
		name    string
		rate    float64
		samples []sample
		want    bool
	}{
		{"climb", 2000, series(func(i int) int64 { return int64(500 * i) }), true},
		{"flat", 2000, series(func(int) int64 { return 3000 }), false},
		{"sawtooth", 2000, series(func(i int) int64 { return int64(1000 * (i % 2)) }), false},
		{"slow creep under a batch", 2000, series(func(i int) int64 { return int64(50 * i) }), false},
		{"one step up to a new level", 2000, series(func(i int) int64 { return map[bool]int64{true: 100, false: 1600}[i < 2] }), false},
		{"decline", 2000, series(func(i int) int64 { return int64(10000 - 800*i) }), false},
		{"short window", 2000, series(func(i int) int64 { return int64(500 * i) })[:5], false},
		{"wander of the batches in flight at 14,000/s", 14000, series(func(i int) int64 { return wander[i] }), false},
		{"the same wander at 2,000/s counts", 2000, series(func(i int) int64 { return wander[i] }), true},
		{"5 % behind at 14,000/s", 14000, series(func(i int) int64 { return int64(700 * i) }), true},
		{"2 % behind at 14,000/s", 14000, series(func(i int) int64 { return int64(280 * i) }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := growing(tc.samples, 10*time.Second, 1000, tc.rate); got != tc.want {
				t.Fatalf("growing = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestGatewayMetricsRead reads the gateway's metrics from an exposition: sums
// over label sets, histograms' sums and counts, and errors for malformed
// input and values that are not finite.
func TestGatewayMetricsRead(t *testing.T) {
	raw := `# HELP gateway_buffer_rows Buffered rows by class.
# TYPE gateway_buffer_rows gauge
gateway_buffer_rows{class="log"} 1200
gateway_buffer_rows{class="screenshot"} 3
gateway_buffer_rows_other 99
gateway_uplink_events_total{stream="logs",weird="a}\"b"} 5e3
gateway_uplink_events_total{stream="device_events"} 7 1700000000000
# TYPE gateway_uplink_latency_seconds histogram
gateway_uplink_latency_seconds_bucket{le="0.1"} 3
gateway_uplink_latency_seconds_bucket{le="+Inf"} 4
gateway_uplink_latency_seconds_sum 0.75
gateway_uplink_latency_seconds_count 4
`
	fams, err := stack.ParseText(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	got, err := readGateway(fams)
	if err != nil {
		t.Fatal(err)
	}
	want := gatewayMetrics{backlog: 1203, uploaded: 5007, uploadSeconds: 0.75, uploads: 4}
	if got != want {
		t.Fatalf("reading = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"gateway_buffer_rows{class=\"log\" 1", "gateway_buffer_rows x", "gateway_buffer_rows"} {
		if _, err := stack.ParseText(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	for _, bad := range []string{"gateway_buffer_rows NaN\n", "gateway_uplink_events_total +Inf\n"} {
		fams, err := stack.ParseText(strings.NewReader(bad))
		if err != nil {
			t.Fatalf("%q: %v", bad, err)
		}
		if _, err := readGateway(fams); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestGatewayMetricsScrape reads a real gateway registry's exposition over HTTP.
func TestGatewayMetricsScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	rows := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricBacklog, Help: "h"}, []string{"class"})
	lat := prometheus.NewHistogram(prometheus.HistogramOpts{Name: metricCommit, Help: "h", Buckets: []float64{0.01, 0.1}})
	reg.MustRegister(rows, lat)
	rows.WithLabelValues("log").Set(40)
	rows.WithLabelValues("screenshot").Set(2)
	lat.Observe(0.05)
	lat.Observe(0.25)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	got, err := scrape(t.Context(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got.backlog != 42 || got.commits != 2 || math.Abs(got.commitSeconds-0.3) > 1e-9 {
		t.Fatalf("reading = %+v", got)
	}
	if _, err := scrape(t.Context(), srv.Client(), srv.URL+"/nothing"); err == nil {
		t.Fatal("404: no error")
	}
}
