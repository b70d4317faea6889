package e2e_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dispatch"
	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// agentAPIStack is the Agent API as cmd/agent-api wires it (ingest into
// the time series, the command queue, the control hub, gateway auth) over
// one ingest-role pool, with the hub running.
type agentAPIStack struct {
	routes http.Handler
	hub    *control.Hub
	queue  *dispatch.Queue
	gws    *auth.Gateways
	// stop ends the hub and waits for it; call it before closing the
	// HTTP server that serves routes.
	stop func()
}

func startAgentAPI(t *testing.T, ing *pgxpool.Pool, reg *prometheus.Registry, qopts dispatch.Options, copts control.Options) *agentAPIStack {
	t.Helper()
	logger := logtest.New(t)
	files, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := ingest.New(ingest.Deps{Store: timeseries.NewStore(timeseries.StoreConfig{Main: ing, Logger: logger, Registry: reg}), Files: files, Logger: logger, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	q, err := dispatch.New(ing, qopts, reg)
	if err != nil {
		t.Fatal(err)
	}
	gws := auth.NewGateways(ing)
	hub := control.New(ing, gws, q, logger, reg, copts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hub.Run(ctx); close(done) }()
	sweeper := control.NewSweeper(ing, q, logger, copts)
	if err := sweeper.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return &agentAPIStack{
		routes: agentapi.NewServer(agentapi.Deps{DB: ing, Logger: logger, Registry: reg, Gateways: gws, Ingest: svc, Control: hub}),
		hub:    hub,
		queue:  q,
		gws:    gws,
		stop: func() {
			if err := sweeper.Stop(context.Background()); err != nil {
				t.Errorf("sweeper: %v", err)
			}
			cancel()
			<-done
		},
	}
}
