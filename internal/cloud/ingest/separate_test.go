package ingest_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestSeparateStoreRefusalsAndResends runs against a separate time-series
// store (TIMESCALE_URL): a data error there is a 422 naming the event and
// never counts towards the fallback switch; re-sends numbered anew leave
// no sequence gap in normal mode and in fallback.
func TestSeparateStoreRefusalsAndResends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := newEnv(t, ingest.DefaultLimits())
	sep := newSeparateStore(t, base, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour, 0)
	e, tsCluster, store, reg := &sep.env, sep.cluster, sep.store, sep.registry

	events := makeEvents(40, 1)
	send := func(key string, evs []protocol.Event, firstSeq int64) (int, protocol.IngestResponse, protocol.ErrorResponse) {
		t.Helper()
		b := append([]protocol.Event{}, evs...)
		for i := range b {
			b[i].Seq = firstSeq + int64(i)
		}
		var a struct {
			protocol.IngestResponse
			protocol.ErrorResponse
		}
		code := e.postGzip(protocol.PathIngestLogs, e.a, key, protocol.LogBatch{Events: b}, &a)
		return code, a.IngestResponse, a.ErrorResponse
	}
	wantGap := func(step string, want int) {
		t.Helper()
		if g := e.gap(e.a); g != want {
			t.Errorf("%s: gap %d, want %d", step, g, want)
		}
	}

	// Normal mode: stored, re-sent under new seqs, the re-send replayed.
	b1 := events[:10]
	if code, r, _ := send(uuid.NewString(), b1, 1); code != 200 || r.Store != "timeseries" || r.Accepted != 10 {
		t.Fatalf("first batch: %d %+v", code, r)
	}
	for i := 0; i < 2; i++ {
		if code, r, _ := send(uuid.NewString(), b1, 11); code != 200 || r.Duplicates != 10 {
			t.Fatalf("re-send %d: %d %+v", i+1, code, r)
		}
		wantGap("re-send in the store", 0)
	}

	// A data error in the store: 422 naming the event, three times over,
	// and the store is still in normal mode with no failure counted.
	tsAdmin, err := pgx.Connect(ctx, tsCluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tsAdmin.Exec(ctx, `ALTER TABLE monitoring.active_windows ADD CONSTRAINT test_refuse CHECK (process_name IS DISTINCT FROM 'refuse.exe')`); err != nil {
		t.Fatal(err)
	}
	tsAdmin.Close(ctx)
	bad := append([]protocol.Event{}, events[10:20]...)
	bad[2].ProcessName = "refuse.exe" // events[10+2] is an active window
	for i := 0; i < 3; i++ {
		if code, _, er := send(uuid.NewString(), bad, 21); code != http.StatusUnprocessableEntity || er.Field != "events[2]" {
			t.Fatalf("refused by the store, try %d: %d %+v, want 422 naming events[2]", i+1, code, er)
		}
	}
	if m := store.Mode(); m != timeseries.ModeNormal {
		t.Fatalf("after three data errors the store is in %s mode, want normal", m)
	}
	if v := gaugeValue(t, reg, "timeseries_write_failures_total", "", ""); v != 0 {
		t.Errorf("timeseries_write_failures_total = %v after data errors, want 0", v)
	}
	bad[2].ProcessName = "fixed.exe"
	if code, r, _ := send(uuid.NewString(), bad, 21); code != 200 || r.Accepted != 10 {
		t.Fatalf("the corrected batch: %d %+v", code, r)
	}
	wantGap("corrected batch", 0)

	// The events commit in the store, then the main database fails the
	// batch's accounting (here: the drop report's insert is not permitted,
	// a 503). The retry under the same key finds every event a duplicate
	// under its own seq, yet accounts them (and answers them accepted), from
	// what the store's transaction recorded for the key.
	if _, err := e.admin.Exec(ctx, `REVOKE INSERT ON gateway_drop_reports FROM staff_ingest`); err != nil {
		t.Fatal(err)
	}
	half := events[35:40]
	withDrop := func(key string) (int, protocol.IngestResponse) {
		b := append([]protocol.Event{}, half...)
		for i := range b {
			b[i].Seq = 32 + int64(i) // 31 was dropped at the gateway
		}
		var r protocol.IngestResponse
		code := e.postGzip(protocol.PathIngestLogs, e.a, key, protocol.LogBatch{Events: b,
			Drops: []protocol.Drop{{Reason: protocol.DropDiskPressure, Class: protocol.ClassScreenshot, Count: 1}}}, &r)
		return code, r
	}
	kd := uuid.NewString()
	if code, _ := withDrop(kd); code != http.StatusServiceUnavailable {
		t.Fatalf("accounting failing in the main database: %d, want 503", code)
	}
	if _, err := e.admin.Exec(ctx, `GRANT INSERT ON gateway_drop_reports TO staff_ingest`); err != nil {
		t.Fatal(err)
	}
	if code, r := withDrop(kd); code != 200 || r.Accepted != 5 || r.Duplicates != 0 {
		t.Fatalf("retry after the accounting failed: %d %+v, want 200 with the 5 events accepted", code, r)
	}
	wantGap("retry after the accounting failed", 0)
	tsCheck, err := pgx.Connect(ctx, tsCluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var left int
	if err := tsCheck.QueryRow(ctx, `SELECT count(*) FROM ingest_store_accounting`).Scan(&left); err != nil || left != 0 {
		t.Errorf("store-side accounting records left: %d (%v), want 0", left, err)
	}
	tsCheck.Close(ctx)

	// The store goes down: two 503s, then fallback; the failed batches are
	// retried under their keys.
	if err := tsCluster.Stop(); err != nil {
		t.Fatal(err)
	}
	b2, b3, b4 := events[20:25], events[25:30], events[30:35]
	k2, k3 := uuid.NewString(), uuid.NewString()
	for i, kk := range []string{k2, k3} {
		if code, _, _ := send(kk, [][]protocol.Event{b2, b3}[i], int64(37+5*i)); code != http.StatusServiceUnavailable {
			t.Fatalf("outage, try %d: %d, want 503", i+1, code)
		}
	}
	if code, r, _ := send(uuid.NewString(), b4, 47); code != 200 || r.Store != "fallback" {
		t.Fatalf("third failure: %d %+v, want stored in fallback", code, r)
	}
	for i, kk := range []string{k2, k3} {
		if code, _, _ := send(kk, [][]protocol.Event{b2, b3}[i], int64(37+5*i)); code != 200 {
			t.Fatalf("retry %d in fallback: %d", i+1, code)
		}
	}
	wantGap("fallback, failed batches retried", 0)
	// Re-sends in fallback: of events stored in the fallback (duplicates
	// there), and of events stored in the store before the outage (new to
	// the fallback; re-sync removes the second copy later).
	for i := 0; i < 2; i++ {
		if code, r, _ := send(uuid.NewString(), b4, 52); code != 200 || r.Duplicates != 5 {
			t.Fatalf("re-send in fallback %d: %d %+v", i+1, code, r)
		}
		wantGap("re-send in fallback", 0)
	}
	if code, r, _ := send(uuid.NewString(), b1, 57); code != 200 || r.Store != "fallback" {
		t.Fatalf("re-send of store events in fallback: %d %+v", code, r)
	}
	wantGap("re-send of store events in fallback", 0)
	if v := gaugeValue(t, reg, "ingest_sequence_gap", "gateway", e.a.id); v != 0 {
		t.Errorf("ingest_sequence_gap = %v, want 0", v)
	}
}
