package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestFailoverToFallbackAndResync runs the Agent API against a separate
// time-series cluster, stops that cluster, and checks: the first two
// failures answer 503; the third switches to the fallback partitions (the
// batch is stored, X-Fallback-Mode: true); reads see both stores; once the
// cluster is back, the probe re-syncs and every event is in the store
// exactly once with the fallback empty. Meanwhile the second organisation
// sends events under ids and times the first holds (in the fallback and in
// the store): they are accepted and re-synced beside the first's.
func TestFailoverToFallbackAndResync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := newEnv(t, ingest.DefaultLimits()) // main database, organisations, gateways

	// The separate time-series store: its own cluster, migrated.
	sep := newSeparateStore(t, base, logtest.New(t), 200*time.Millisecond, 40)
	e, tsCluster, tsDashURL, store, reg, srv := &sep.env, sep.cluster, sep.dashURL, sep.store, sep.registry, sep.env.srv
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Stop(context.Background()); err != nil {
			t.Errorf("stop the store's probe: %v", err)
		}
	})

	mode := func() string { return store.Mode().String() }
	fallbackGauge := func() float64 { return gaugeValue(t, reg, "timeseries_store_mode", "mode", "fallback") }

	sendAs := func(g gatewayCreds, key string, events []protocol.Event) (int, string, protocol.IngestResponse) {
		t.Helper()
		var resp protocol.IngestResponse
		req, _ := http.NewRequest(http.MethodPost, srv.URL+protocol.PathIngestLogs, strings.NewReader(string(mustJSON(protocol.LogBatch{Events: events}))))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(protocol.HeaderAPIKey, g.key)
		req.Header.Set(protocol.HeaderIdempotencyKey, key)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		_ = jsonDecode(r.Body, &resp)
		return r.StatusCode, r.Header.Get(protocol.HeaderFallbackMode), resp
	}
	send := func(key string, events []protocol.Event) (int, string, protocol.IngestResponse) {
		t.Helper()
		return sendAs(e.a, key, events)
	}

	all := makeEvents(700, 1)
	b1, b2, b3, b4, b5 := all[:100], all[100:200], all[200:300], all[300:400], all[400:700]
	k := func() string { return uuid.NewString() }

	// 1. Normal: the store takes the batch.
	if code, fb, r := send(k(), b1); code != 200 || fb != "false" || r.Store != "timeseries" || r.Accepted != 100 {
		t.Fatalf("normal batch: %d fallback=%s %+v", code, fb, r)
	}
	// 2. The store goes down. Two failures: 503, still not in fallback.
	if err := tsCluster.Stop(); err != nil {
		t.Fatal(err)
	}
	k2, k3 := k(), k()
	for i, kk := range []string{k2, k3} {
		if code, fb, _ := send(kk, [][]protocol.Event{b2, b3}[i]); code != http.StatusServiceUnavailable || fb == "true" {
			t.Fatalf("failure %d: %d fallback=%s, want 503 without fallback", i+1, code, fb)
		}
		if mode() != "normal" || fallbackGauge() != 0 {
			t.Fatalf("after %d failures the mode is %s (gauge %v), want normal", i+1, mode(), fallbackGauge())
		}
	}
	// 3. The third failure switches to fallback, and this batch is stored there.
	if code, fb, r := send(k(), b4); code != 200 || fb != "true" || r.Store != "fallback" || r.Accepted != 100 {
		t.Fatalf("third failure: %d fallback=%s %+v, want 200 stored in fallback", code, fb, r)
	}
	if mode() != "fallback" || fallbackGauge() != 1 {
		t.Fatalf("after the third failure: mode %s, gauge %v; want fallback, 1", mode(), fallbackGauge())
	}
	// The gateway retries the two failed batches (same keys) and sends more,
	// including events the store already holds (re-batched after a crash).
	for i, kk := range []string{k2, k3} {
		if code, fb, _ := send(kk, [][]protocol.Event{b2, b3}[i]); code != 200 || fb != "true" {
			t.Fatalf("retry %d in fallback: %d fallback=%s", i+1, code, fb)
		}
	}
	if code, fb, _ := send(k(), append(append([]protocol.Event{}, b5...), b1[:50]...)); code != 200 || fb != "true" {
		t.Fatalf("batch 5 in fallback: %d %s", code, fb)
	}
	// Organisation B sends events under ids and times A holds: 100 in the
	// fallback (batch 4), 20 in the store (from batch 1, before the outage).
	// An event id is unique within its organisation: all 120 are accepted.
	inB := append(append([]protocol.Event{}, b4...), b1[:20]...)
	if code, fb, r := sendAs(e.b, k(), inB); code != 200 || fb != "true" || r.Accepted != 120 || r.Duplicates != 0 {
		t.Fatalf("organisation B's batch with A's ids in fallback: %d fallback=%s %+v, want 120 accepted", code, fb, r)
	}
	// Reads during fallback see both stores, each event once: the main
	// database's views (fallback rows) plus the store's (down now, so read
	// the main alone and add what the store held before the outage).
	mainDash, err := postgres.Connect(ctx, strings.Replace(base.ingestURL, postgres.RoleIngest, postgres.RoleDashboard, 1), 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mainDash.Close)
	from, to := time.Now().Add(-48*time.Hour), time.Now().Add(time.Hour)
	var inFallback int
	for _, table := range []string{"active_windows", "visited_sites", "user_sessions"} {
		ids, err := timeseries.NewReader(mainDash, nil).EventIDs(ctx, postgres.Tenant{OrganizationID: e.a.org}, table, from, to)
		if err != nil {
			t.Fatal(err)
		}
		inFallback += len(ids)
	}
	if inFallback != 650 {
		t.Fatalf("main database reads %d fallback events, want 650 (batches 2-5 and the re-sent half of batch 1)", inFallback)
	}

	// 4. The store comes back: the probe notices, re-syncs, ends fallback.
	if err := tsCluster.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for mode() != "normal" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if mode() != "normal" {
		t.Fatalf("mode %s 60 s after recovery, want normal", mode())
	}
	if code, fb, _ := send(k(), makeEvents(10, 701)); code != 200 || fb != "false" {
		t.Fatalf("after recovery: %d fallback=%s", code, fb)
	}

	// Every event in the store exactly once, the fallback empty, and the
	// dashboard's reads across both stores see each event once.
	ts, err := pgx.Connect(ctx, tsCluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close(ctx)
	storeIDs := func(org int64) map[string]int {
		t.Helper()
		out := map[string]int{}
		rows, err := ts.Query(ctx, `SELECT id::text FROM monitoring.active_windows WHERE organization_id = $1
			UNION ALL SELECT id::text FROM monitoring.visited_sites WHERE organization_id = $1
			UNION ALL SELECT id::text FROM monitoring.user_sessions WHERE organization_id = $1`, org)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out[id]++
		}
		return out
	}
	counts := storeIDs(e.a.org)
	countsB := storeIDs(e.b.org)
	for _, ev := range inB {
		if countsB[ev.EventID] != 1 {
			t.Errorf("organisation B's event %s is in the store %d times, want 1", ev.EventID, countsB[ev.EventID])
		}
	}
	if len(countsB) != len(inB) {
		t.Errorf("store holds %d events of organisation B, want %d", len(countsB), len(inB))
	}
	for _, ev := range all {
		if counts[ev.EventID] != 1 {
			t.Errorf("event %s is in the store %d times, want 1", ev.EventID, counts[ev.EventID])
		}
	}
	if len(counts) != 710 {
		t.Errorf("store holds %d events, want 710", len(counts))
	}
	left := base.count(`SELECT ((SELECT count(*) FROM monitoring_fallback.active_windows) + (SELECT count(*) FROM monitoring_fallback.visited_sites) + (SELECT count(*) FROM monitoring_fallback.user_sessions))::int`)
	if left != 0 {
		t.Errorf("%d rows left in the fallback partitions", left)
	}
	tsDash, err := postgres.Connect(ctx, tsDashURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer tsDash.Close()
	var seen int
	for _, table := range []string{"active_windows", "visited_sites", "user_sessions"} {
		ids, err := timeseries.NewReader(tsDash, mainDash).EventIDs(ctx, postgres.Tenant{OrganizationID: e.a.org}, table, from, to)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(ids)
	}
	if seen != 710 {
		t.Errorf("dashboard reads %d events across both stores, want 710", seen)
	}
	if v := fallbackGauge(); v != 0 {
		t.Errorf("fallback gauge = %v after recovery", v)
	}
	if v := gaugeValue(t, reg, "timeseries_resync_rows_total", "", ""); v < 650 {
		t.Errorf("re-sync copied %v rows, want at least 650", v)
	}
}

// gaugeValue reads one sample from reg: the metric name with label=value
// (or the unlabelled metric when label is empty).
func gaugeValue(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
