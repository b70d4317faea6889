package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
)

// poisonDrainTime is the "normal drain time" this test allows: the cloud's
// Retry-After (1 s) times uplink.isolate_after_failures (5) for the batch
// holding the poison and again for the poison alone, plus the bisection (one
// failure per level) and the clean events' upload.
const poisonDrainTime = 60 * time.Second

// TestPoisonEventIsSetAsideAndCleanEventsArriveOnce is the NUL stall
// reproduction with the real gateway, the real Agent API and PostgreSQL. An
// event whose window title holds a NUL sits in the gateway's buffer (stored
// through buffer.Append, as a gateway before the collector's NUL check
// would have stored it); simulated agents then send clean events. The cloud
// refuses the poison — 503 before the ingest's data-error classification, 422
// after it — and the gateway sets it aside as a dead letter either way,
// reports it (a gateway_drop_reports row with its reason), and every clean
// event arrives exactly once, within the normal drain time. Then an
// operator's replay_dead_letters command, through the real queue and control
// channel, sends it again; still refused, it is set aside and reported again.
func TestPoisonEventIsSetAsideAndCleanEventsArriveOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	ingPool, err := postgres.Connect(ctx, db.IngestURL, 10, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer ingPool.Close()
	// The Agent API with its control hub running, so that a command reaches
	// the gateway over its control channel.
	stack := startAgentAPI(t, ingPool, service.NewRegistry(), agentapi.Config{Queue: commandqueue.Options{AckTimeout: time.Second, Backoff: 100 * time.Millisecond}})
	api := httptest.NewServer(stack.routes)
	defer func() { stack.stop(); api.CloseClientConnections(); api.Close() }()

	dash, err := postgres.Connect(ctx, db.DashboardURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer dash.Close()
	acc := accounts.New(pg.Pool(t, db.PlatformAdminURL, 2), time.Now)
	admin := accounts.Actor{Name: "e2e", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	org, err := acc.CreateOrganization(ctx, admin, "Alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	secret := newEnrolmentSecret(t, dash, org.ID)
	regn, err := acc.RegisterGateway(ctx, admin, org.ID, "GW-POISON", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// The poison, already in the buffer when the gateway starts.
	dir := t.TempDir()
	bufPath := filepath.Join(dir, "buffer.sqlite")
	poison := uuid.Must(uuid.NewV7()).String()
	d := int64(4)
	ev := protocol.Event{EventID: poison, Type: protocol.TypeActiveWindow, AgentUID: "old-agent", ComputerName: "PC-OLD",
		UserSID: "S-1-5-21-9", Datetime: time.Now().UTC().Add(-time.Minute), DurationSeconds: &d, ProcessName: "notepad.exe",
		WindowTitle: "report\x00.txt"}
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := buffer.Open(ctx, buffer.Options{Config: buffer.Config{Path: bufPath, MaxBytes: 1 << 30}, FSUsage: func(string) (float64, error) { return 0, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pre.Append(ctx, []buffer.Record{{Class: protocol.ClassLog, Type: ev.Type, EventID: poison, Payload: payload}}); err != nil {
		t.Fatal(err)
	}
	if err := pre.Close(); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{
		"STAFF_GATEWAY_SERVER_URL":                      api.URL,
		"STAFF_GATEWAY_ORGANIZATION_ID":                 strconv.FormatInt(org.ID, 10),
		"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": regn.ProvisioningToken,
		"STAFF_GATEWAY_GATEWAY_SERIAL":                  "GW-POISON",
		"STAFF_GATEWAY_GATEWAY_LISTEN":                  "127.0.0.1:0",
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":             "off",
		"STAFF_GATEWAY_BUFFER_PATH":                     bufPath,
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
	start := time.Now()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Stop(sctx)
	}()

	var mu sync.Mutex
	acked := map[string]bool{}
	res, err := agentsim.Run(ctx, agentsim.Options{GatewayURL: "http://" + g.Addr(), EnrolmentSecret: secret, Agents: 4, BatchSize: 50, MaxEvents: 1500,
		Logger: logger, Observe: func(ids []string, o agentsim.Outcome) {
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
	if len(acked) == 0 {
		t.Fatalf("the simulator got nothing acknowledged: %s", res)
	}

	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	stored := func() map[string]int {
		rows, err := conn.Query(ctx, `SELECT id::text FROM monitoring.active_windows
			UNION ALL SELECT id::text FROM monitoring.visited_sites
			UNION ALL SELECT id::text FROM monitoring.user_sessions`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out[id]++
		}
		return out
	}
	count := func(sql string) int {
		var n int
		if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := start.Add(poisonDrainTime)
	var got map[string]int
	reported := 0
	for {
		got = stored()
		missing := 0
		for id := range acked {
			if got[id] == 0 {
				missing++
			}
		}
		reported = count(`SELECT coalesce(sum(count), 0)::int FROM gateway_drop_reports
			WHERE reason IN ('persistent_failure', 'rejected_by_cloud') AND class = 'log'`)
		if missing == 0 && reported >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d of %d clean events missing, %d poison drops reported", poisonDrainTime, missing, len(acked), reported)
		}
		time.Sleep(200 * time.Millisecond)
	}
	elapsed := time.Since(start)
	for id := range acked {
		if got[id] != 1 {
			t.Errorf("clean event %s stored %d times, want exactly once", id, got[id])
		}
	}
	if got[poison] != 0 {
		t.Errorf("the poison was stored")
	}
	if reported != 1 {
		t.Errorf("%d drops reported, want 1 (the poison)", reported)
	}
	var reason string
	if err := conn.QueryRow(ctx, `SELECT reason FROM gateway_drop_reports WHERE reason IN ('persistent_failure', 'rejected_by_cloud')`).Scan(&reason); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "sequence gap 0", 20*time.Second, func() bool {
		return count(`SELECT (max_seq - events_accepted - events_dropped)::int FROM gateway_ingest_stats`) == 0
	})
	t.Logf("poison set aside as %s; %d clean events stored once each; drained in %v; %s", reason, len(acked), elapsed, res)

	// An operator replays it (what `staffctl command send --type
	// replay_dead_letters` enqueues): the command travels the real queue and
	// control channel, completes with {"replayed": 1}, and the poison, still
	// refused, is set aside again and reported again.
	cmd, err := stack.queue.Enqueue(ctx, postgres.Tenant{OrganizationID: org.ID, Role: postgres.AppOrgAdmin},
		commandqueue.NewCommand{GatewayID: regn.GatewayID, Type: protocol.CommandReplayDeadLetters,
			Payload: json.RawMessage(`{"event_ids":["` + poison + `"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "replay_dead_letters completed", 30*time.Second, func() bool {
		var status string
		var result []byte
		_ = conn.QueryRow(ctx, `SELECT status, coalesce(result::text, '') FROM gateway_commands WHERE id = $1`, cmd.ID).Scan(&status, &result)
		if status == "failed" {
			t.Fatalf("replay_dead_letters failed")
		}
		return status == "completed" && string(result) == `{"replayed": 1}`
	})
	waitUntil(t, "the replayed poison set aside again and reported", poisonDrainTime, func() bool {
		return count(`SELECT coalesce(sum(count), 0)::int FROM gateway_drop_reports
			WHERE reason IN ('persistent_failure', 'rejected_by_cloud') AND class = 'log'`) == 2
	})
	if got := stored(); got[poison] != 0 {
		t.Errorf("the poison was stored after replay")
	}
	// The replayed poison's new seq is the highest so far and was never
	// stored: the cloud's max_seq catches up with the next stored event.
	more, err := agentsim.Run(ctx, agentsim.Options{GatewayURL: "http://" + g.Addr(), EnrolmentSecret: secret, Agents: 1, BatchSize: 50, MaxEvents: 50, Logger: logger})
	if err != nil || more.Acked != 50 {
		t.Fatalf("later events: %v %s", err, more)
	}
	waitUntil(t, "sequence gap 0 after the replay", 20*time.Second, func() bool {
		return count(`SELECT (max_seq - events_accepted - events_dropped)::int FROM gateway_ingest_stats`) == 0
	})
}
