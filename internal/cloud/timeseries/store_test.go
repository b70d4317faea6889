package timeseries_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// TestStoreProbeKeepsTheLifecycleContract: the Store's probe is a
// lifecycle.Service, with a separate time-series store (a probe runs) and
// without one (nothing to probe).
func TestStoreProbeKeepsTheLifecycleContract(t *testing.T) {
	t.Parallel()
	mainDB, tsDB := pg.NewDatabase(t), pg.NewDatabase(t)
	for _, tc := range []struct {
		name     string
		separate bool
	}{{"separate store", true}, {"one database", false}} {
		t.Run(tc.name, func(t *testing.T) {
			lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
				main := pg.Pool(t, mainDB.IngestURL, 2)
				ts := main
				if tc.separate {
					ts = pg.Pool(t, tsDB.IngestURL, 2)
				}
				return timeseries.NewStore(timeseries.StoreConfig{Main: main, TS: ts, ProbeInterval: 20 * time.Millisecond,
					Logger: logtest.New(t), Registry: prometheus.NewRegistry()})
			})
		})
	}
}

// TestStoreProbeEndsFallback: a store fallen back after FailureThreshold
// failures is probed while started; once the store answers, the fallback's
// rows are copied back and the mode is normal again. With one database the
// store never falls back.
func TestStoreProbeEndsFallback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mainDB, tsDB := pg.NewDatabase(t), pg.NewDatabase(t)
	admin := adminConn(ctx, t, mainDB.AdminURL)
	gw := uuid.New()
	if _, err := admin.Exec(ctx, `INSERT INTO monitoring_fallback.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, process_name, window_title, datetime, duration_seconds)
		SELECT gen_random_uuid(), 1, $1, g, 'a', 'PC', 'S-1', 'x.exe', 'title ' || g, now() - make_interval(secs => g), 7
		FROM generate_series(1, 50) g`, gw); err != nil {
		t.Fatal(err)
	}
	main, ts := pg.Pool(t, mainDB.IngestURL, 2), pg.Pool(t, tsDB.IngestURL, 2)
	store := timeseries.NewStore(timeseries.StoreConfig{Main: main, TS: ts, ProbeInterval: 20 * time.Millisecond,
		Logger: logtest.New(t), Registry: prometheus.NewRegistry()})
	failure := errors.New("store down")
	for i := 1; i <= timeseries.FailureThreshold; i++ {
		if got, want := store.Failed(ctx, failure), i == timeseries.FailureThreshold; got != want {
			t.Fatalf("failure %d: fallback %v, want %v", i, got, want)
		}
	}
	if m := store.Mode(); m != timeseries.ModeFallback {
		t.Fatalf("mode %v after %d failures, want fallback", m, timeseries.FailureThreshold)
	}
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for store.Mode() != timeseries.ModeNormal {
		if time.Now().After(deadline) {
			t.Fatalf("mode %v 30 s after the store answered, want normal", store.Mode())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var inStore, left int
	if err := adminConn(ctx, t, tsDB.AdminURL).QueryRow(ctx, `SELECT count(*) FROM monitoring.active_windows WHERE gateway_id = $1`, gw).Scan(&inStore); err != nil {
		t.Fatal(err)
	}
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM monitoring_fallback.active_windows`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if inStore != 50 || left != 0 {
		t.Fatalf("after the re-sync: %d rows in the store, %d in the fallback; want 50 and 0", inStore, left)
	}

	one := timeseries.NewStore(timeseries.StoreConfig{Main: main, Logger: logtest.New(t), Registry: prometheus.NewRegistry()})
	for i := 0; i < timeseries.FailureThreshold+1; i++ {
		if one.Failed(ctx, failure) {
			t.Fatal("a store without a separate database fell back")
		}
	}
	if m := one.Mode(); m != timeseries.ModeNormal {
		t.Fatalf("mode %v, want normal", m)
	}
}
