package agentapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// BenchmarkAuthenticatedPing measures the authenticated hot path: GET
// /v2/gateway/ping with a valid API key over loopback HTTP (keep-alive), 4
// clients at once, through RequireGateway (throttle check, key lookup in
// PostgreSQL, success recorded). It builds the server only with Deps
// fields every version has, so the same file measures a build before the
// throttle (see docs/benchmarks.md).
func BenchmarkAuthenticatedPing(b *testing.B) {
	ctx := context.Background()
	db := pg.NewDatabase(b)
	ing, err := postgres.Connect(ctx, db.IngestURL, 8)
	if err != nil {
		b.Fatal(err)
	}
	defer ing.Close()
	dash, err := postgres.Connect(ctx, db.DashboardURL, 2)
	if err != nil {
		b.Fatal(err)
	}
	defer dash.Close()
	gws := auth.NewGateways(ing)
	srv := httptest.NewServer(agentapi.NewServer(agentapi.Deps{DB: ing, Logger: discard(b), Registry: service.NewRegistry(), Gateways: gws}))
	defer srv.Close()
	acc := accounts.New(dash, time.Now)
	actor := accounts.Actor{Name: "bench", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	o, err := acc.CreateOrganization(ctx, actor, "Bench", "")
	if err != nil {
		b.Fatal(err)
	}
	r, err := acc.RegisterGateway(ctx, actor, o.ID, "GW", "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	_, key, err := gws.Provision(ctx, o.ID, "GW", r.ProvisioningToken)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	b.SetParallelism(2) // 2 × GOMAXPROCS clients: 4 on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", srv.URL+protocol.PathGatewayPing, nil)
			req.Header.Set(protocol.HeaderAPIKey, key)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("ping answered %d", resp.StatusCode)
				return
			}
		}
	})
}
