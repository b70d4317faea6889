package scenario_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/bench/scenario"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// TestScenariosAtTinyScale runs each seed scenario for a few seconds
// against the real stack (PostgreSQL, two Agent API replicas behind the
// balancer, a real gateway with agents, a simulated fleet for the queue):
// every threshold rests on real samples, the data arrived in the
// database, and the JSON and HTML are written. The queue scenario runs
// with a queue-depth limit of 1, which the real backlog must break.
func TestScenariosAtTinyScale(t *testing.T) {
	for _, tc := range []struct {
		name  string
		scale float64
		// queueLimit, when set, replaces the seed's queue-depth limit.
		queueLimit int64
	}{
		{name: "batch_ingestion", scale: 0.004}, // 19 min → 4.6 s
		{name: "timescale_stress", scale: 0.01}, // 5 min → 3 s
		{name: "queue_backlog", scale: 0.006, queueLimit: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			sc, err := scenario.Lookup(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			db := pg.NewDatabase(t)
			limits := scenario.SeedLimits()
			if tc.queueLimit > 0 {
				limits.QueueDepth = tc.queueLimit
			}
			var lines int
			res, err := scenario.Run(ctx, scenario.Options{Scenario: sc.Scaled(tc.scale), Scale: tc.scale, DatabaseURL: db.AdminURL,
				Limits: limits, Logger: logtest.New(t), Progress: func(scenario.Second) { lines++ }})
			if err != nil {
				t.Fatal(err)
			}
			if lines == 0 {
				t.Error("no progress line")
			}
			if res.Totals.Requests == 0 {
				t.Fatal("no request")
			}
			byName := map[string]scenario.Threshold{}
			for _, th := range res.Thresholds {
				byName[th.Name] = th
				if th.Samples == 0 {
					t.Errorf("%s: no samples", th.Name)
				}
			}
			if len(byName) != 5 {
				t.Fatalf("thresholds %v", res.Thresholds)
			}
			if byName["timescale_write_duration"].Value <= 0 {
				t.Errorf("write p95 %g: the replicas' histogram saw nothing", byName["timescale_write_duration"].Value)
			}
			if byName["buffer_usage"].Value <= 0 {
				t.Errorf("buffer usage %g: the real gateway's gauge read nothing", byName["buffer_usage"].Value)
			}
			if byName["http_req_duration"].Value <= 0 {
				t.Error("request p95 is zero")
			}
			details := 0
			for _, s := range res.Seconds {
				if s.BufferData != nil && s.BufferFilesystem != nil && *s.BufferFilesystem > 0 {
					details++
				}
			}
			if details == 0 {
				t.Error("the gateway's /health/details was never read")
			}
			conn, err := pgx.Connect(ctx, db.AdminURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if sc.Work == scenario.IngestBatch {
				if res.Totals.Events == 0 {
					t.Error("no events sent")
				}
				var stored int64
				if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM monitoring.active_windows) + (SELECT count(*) FROM monitoring.visited_sites)
					+ (SELECT count(*) FROM monitoring.user_sessions)`).Scan(&stored); err != nil {
					t.Fatal(err)
				}
				ok := res.Totals.Requests - res.Totals.Failures
				if stored < ok*int64(sc.EventsPerBatch) {
					t.Errorf("%d events stored, fewer than the %d acknowledged batches carried", stored, ok)
				}
			} else {
				q := byName["queue_depth"]
				if q.Value < 1 || q.Pass {
					t.Errorf("queue depth %g (pass %v): the backlog did not break a limit of 1", q.Value, q.Pass)
				}
				if res.Pass {
					t.Error("the run passed with a queue-depth limit of 1")
				}
				var completed int64
				if err := conn.QueryRow(ctx, `SELECT count(*) FROM gateway_commands WHERE status = 'completed'`).Scan(&completed); err != nil {
					t.Fatal(err)
				}
				if completed == 0 {
					t.Error("the fleet completed no command")
				}
			}
			dir := t.TempDir()
			jp, hp, err := res.Write(dir)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(jp)
			if err != nil {
				t.Fatal(err)
			}
			var back scenario.Result
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatalf("the JSON does not read back: %v", err)
			}
			if len(back.Seconds) == 0 || len(back.Thresholds) != 5 {
				t.Errorf("JSON: %d seconds, %d thresholds", len(back.Seconds), len(back.Thresholds))
			}
			page, err := os.ReadFile(hp)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(page), "<svg"); n != 6 || strings.Contains(string(page), "<script") {
				t.Errorf("HTML: %d charts (want 6), script %v", n, strings.Contains(string(page), "<script"))
			}
			t.Logf("%s: %d requests, %d failed, %d dropped, p95 %.1f ms, write p95 %.1f ms, depth %g, buffer %.4f",
				tc.name, res.Totals.Requests, res.Totals.Failures, res.Totals.Dropped, res.Totals.P95,
				byName["timescale_write_duration"].Value, byName["queue_depth"].Value, byName["buffer_usage"].Value)
		})
	}
}
