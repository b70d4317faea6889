package ingest_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgcluster"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
)

// separateStore is an ingest service, and the Agent API routes over it,
// writing through a separate time-series store (TIMESCALE_URL): a cluster
// of its own, migrated and holding the tenant context key, beside base's
// main database. The store's probe is not started.
type separateStore struct {
	env      env                  // base with the new srv, registry and svc
	cluster  *pgcluster.Cluster   // the time-series store's cluster (stop it to fail the store)
	dashURL  string               // the store as the dashboard role
	store    *timeseries.Store    // writes to the cluster, falling back to the main database
	registry *prometheus.Registry // the service's and the store's metrics
}

// newSeparateStore starts the store's cluster and builds the service over
// it; the store probes every probe and re-syncs chunk rows at a time (0:
// its default). Everything is released at the test's end.
func newSeparateStore(t *testing.T, base *env, logger *slog.Logger, probe time.Duration, chunk int) *separateStore {
	t.Helper()
	ctx := context.Background()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Close() })
	if _, err := postgres.MigrateUp(ctx, cluster.URL("postgres"), nil); err != nil {
		t.Fatal(err)
	}
	if err := postgres.InstallContextKey(ctx, cluster.URL("postgres"), pg.ContextKey()); err != nil {
		t.Fatal(err)
	}
	ingestURL, _ := postgres.WithUser(cluster.URL("postgres"), postgres.RoleIngest, "")
	dashURL, _ := postgres.WithUser(cluster.URL("postgres"), postgres.RoleDashboard, "")
	tsPool, err := postgres.Connect(ctx, ingestURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tsPool.Close)
	mainPool, err := postgres.Connect(ctx, base.ingestURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mainPool.Close)
	reg := service.NewRegistry()
	store := timeseries.NewStore(timeseries.StoreConfig{Main: mainPool, TS: tsPool, ProbeInterval: probe, ResyncChunk: chunk, Logger: logger, Registry: reg})
	files, _ := storage.NewLocal(t.TempDir())
	svc, err := ingest.New(ingest.Deps{Store: store, Files: files, Logger: logger, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(agentapi.NewServer(agentapi.Deps{DB: mainPool, Logger: logger, Registry: reg, Gateways: auth.NewGateways(mainPool), Ingest: svc}))
	t.Cleanup(srv.Close)
	e := *base
	e.srv, e.registry, e.svc = srv, reg, svc
	return &separateStore{env: e, cluster: cluster, dashURL: dashURL, store: store, registry: reg}
}
