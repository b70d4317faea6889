package stack_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/bench/stack"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
)

// TestStackCarriesEventsThroughBothReplicas: a gateway provisioned through
// the balancer uploads what agents send; every acknowledged id is stored
// once, and both replicas served requests.
func TestStackCarriesEventsThroughBothReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logger := logtest.New(t)
	s, err := stack.Start(ctx, stack.Options{Replicas: 2, PoolSize: 4, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	org, err := s.NewOrganization(ctx, "Stack Test", "stack-test")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := s.RegisterGateway(ctx, org.ID, "GW-STACK-1")
	if err != nil {
		t.Fatal(err)
	}
	env := s.GatewayEnv(reg, t.TempDir(), "127.0.0.1:0")
	env["STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL"] = "100ms"
	g, err := stack.StartGateway(ctx, env, gateway.Deps{Logger: logger, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Stop(context.Background()) }()

	var mu sync.Mutex
	acked := map[string]bool{}
	res, err := agentsim.Run(ctx, agentsim.Options{GatewayURL: "http://" + g.Addr(), EnrolmentSecret: org.EnrolmentSecret, Agents: 2, BatchSize: 50, MaxEvents: 600,
		Observe: func(ids []string, o agentsim.Outcome) {
			if o == agentsim.Acked {
				mu.Lock()
				defer mu.Unlock()
				for _, id := range ids {
					acked[id] = true
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(acked) == 0 {
		t.Fatalf("nothing acknowledged: %s", res)
	}
	conn, err := pgx.Connect(ctx, s.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	count := func() map[string]int {
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
	var got map[string]int
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		got = count()
		if len(got) >= len(acked) {
			break
		}
	}
	for id := range acked {
		if got[id] != 1 {
			t.Errorf("acknowledged event %s stored %d times, want 1", id, got[id])
		}
	}
	for i, r := range s.Replicas {
		if r.Requests.Load() == 0 {
			t.Errorf("replica %d served no request through the balancer", i)
		}
	}
}
