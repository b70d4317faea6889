package e2e_test

import (
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
)

// agentAPIStack is the whole Agent API (agentapitest.Start: every part
// cmd/agent-api runs, started) over one ingest-role pool; the tests serve
// routes through their own test servers to observe or hold requests.
type agentAPIStack struct {
	routes http.Handler
	hub    *control.Hub
	queue  *commandqueue.Queue
	gws    *auth.Gateways
	// stop stops the Agent API (its hub closes the sockets); call it
	// before closing the HTTP server that serves routes.
	stop func()
}

// startAgentAPI starts the whole Agent API with cfg (its timings) over ing.
func startAgentAPI(t testing.TB, ing *pgxpool.Pool, reg *prometheus.Registry, cfg agentapi.Config) *agentAPIStack {
	t.Helper()
	api := agentapitest.Start(t, ing, agentapitest.Options{Config: cfg, Registry: reg})
	return &agentAPIStack{routes: api.Handler, hub: api.Hub, queue: api.Queue, gws: api.Gateways, stop: api.Stop}
}
