// Package e2e_test runs the whole data path with real parts: simulated
// desktop agents → Agent Gateway (collector, SQLite buffer, uplink) →
// Agent API (provisioning, exactly-once ingest) → PostgreSQL, and checks per
// event id that every acknowledged event is stored exactly once, in its
// organisation only. It is the one place that imports both edge and cloud
// packages, as a test.
package e2e_test

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

func TestAgentsToGatewayToCloudExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	logger := logtest.New(t)

	// The cloud: the Agent API on loopback with its real dependencies.
	ingPool, err := postgres.Connect(ctx, db.IngestURL, 10, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ingPool.Close) // after the Agent API's Stop (cleanups run in reverse)
	api := agentapitest.Start(t, ingPool, agentapitest.Options{Logger: logger})

	// Two organisations; the gateway belongs to A and provisions itself.
	dash, err := postgres.Connect(ctx, db.DashboardURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer dash.Close()
	acc := accounts.New(pg.Pool(t, db.PlatformAdminURL, 2), time.Now)
	admin := accounts.Actor{Name: "e2e", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	orgA, err := acc.CreateOrganization(ctx, admin, "Alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acc.CreateOrganization(ctx, admin, "Beta", ""); err != nil {
		t.Fatal(err)
	}
	secret := newEnrolmentSecret(t, dash, orgA.ID)
	regn, err := acc.RegisterGateway(ctx, admin, orgA.ID, "GW-E2E", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// The gateway, configured like the install script does.
	dir := t.TempDir()
	env := map[string]string{
		"STAFF_GATEWAY_SERVER_URL":                      api.URL,
		"STAFF_GATEWAY_ORGANIZATION_ID":                 strconv.FormatInt(orgA.ID, 10),
		"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": regn.ProvisioningToken,
		"STAFF_GATEWAY_GATEWAY_SERIAL":                  "GW-E2E",
		"STAFF_GATEWAY_GATEWAY_LISTEN":                  "127.0.0.1:0",
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":             "off",
		"STAFF_GATEWAY_BUFFER_PATH":                     filepath.Join(dir, "buffer.sqlite"),
		"STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL":           "100ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_INITIAL":          "20ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_MAX":              "200ms",
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(context.Background(), cfg, gateway.Deps{Logger: logger, Version: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Stop(sctx)
	}()

	// Agents send events and screenshots; record what the gateway acknowledged.
	var mu sync.Mutex
	acked := map[string]bool{}
	res, err := agentsim.Run(ctx, agentsim.Options{GatewayURL: "http://" + g.Addr(), EnrolmentSecret: secret, Agents: 8, BatchSize: 50, MaxEvents: 4000,
		ScreenshotEvery: 3, ScreenshotBytes: 8 << 10, Logger: logger,
		Observe: func(ids []string, o agentsim.Outcome) {
			if o == agentsim.Acked {
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(acked) == 0 || res.Screenshots == 0 {
		t.Fatalf("the simulator got nothing acknowledged: %s", res)
	}

	// Every acknowledged id reaches PostgreSQL exactly once, in organisation A.
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	stored := func() map[string]int {
		rows, err := conn.Query(ctx, `SELECT id::text, organization_id FROM monitoring.active_windows
			UNION ALL SELECT id::text, organization_id FROM monitoring.visited_sites
			UNION ALL SELECT id::text, organization_id FROM monitoring.user_sessions
			UNION ALL SELECT id::text, organization_id FROM monitoring.screenshots`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var id string
			var org int64
			if err := rows.Scan(&id, &org); err != nil {
				t.Fatal(err)
			}
			if org != orgA.ID {
				t.Fatalf("event %s stored for organisation %d, want %d", id, org, orgA.ID)
			}
			out[id]++
		}
		return out
	}
	var got map[string]int
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		got = stored()
		missing := 0
		for id := range acked {
			if got[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for id := range acked {
		if got[id] != 1 {
			t.Errorf("acknowledged event %s stored %d times, want exactly once", id, got[id])
		}
	}
	var shots int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM monitoring.screenshots`).Scan(&shots); err != nil || int64(shots) != res.Screenshots {
		t.Errorf("screenshots stored %d (%v), simulator saw %d acknowledged", shots, err, res.Screenshots)
	}
	var gap int64
	if err := conn.QueryRow(ctx, `SELECT max_seq - events_accepted - events_dropped FROM gateway_ingest_stats`).Scan(&gap); err != nil || gap != 0 {
		t.Errorf("sequence gap %d (%v), want 0", gap, err)
	}
	t.Logf("%d events acknowledged by the gateway, all stored once in the cloud; %s", len(acked), res)
}
