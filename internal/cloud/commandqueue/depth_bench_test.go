package commandqueue_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// BenchmarkDepthSample is one sample of the queue's depth (the Agent API
// takes one every 15 s) with 10,000 commands waiting (pending and
// delivered, every type), beside a history of finished commands: none, or
// 200,000. The function reads the waiting commands through the partial
// indexes, not the history; its statement is also timed against the first
// form (status IN (...)), which read the whole table.
//
//	go test ./internal/cloud/commandqueue/ -run '^$' -bench DepthSample -count 5
func BenchmarkDepthSample(b *testing.B) {
	for _, history := range []int{0, 200_000} {
		b.Run(fmt.Sprintf("history=%d", history), func(b *testing.B) {
			ctx := context.Background()
			db := pg.NewDatabase(b)
			admin, err := pgx.Connect(ctx, db.AdminURL)
			if err != nil {
				b.Fatal(err)
			}
			defer admin.Close(ctx)
			o, err := pgtest.SeedOrganization(ctx, admin, "bench")
			if err != nil {
				b.Fatal(err)
			}
			const fill = `INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, status, created_at)
				SELECT $1, $2, (ARRAY['policy_update','restart_agent','device_command','rotate_api_key','replay_dead_letters','revoke_agent','devices_update'])[1 + i % 7],
				       '{}', $3, now() - make_interval(secs => i % 3600)
				FROM generate_series(1, $4) i`
			for _, f := range []struct {
				status string
				n      int
			}{{"pending", 8_000}, {"delivered", 2_000}, {"completed", history * 9 / 10}, {"failed", history / 20}, {"expired", history / 20}} {
				if _, err := admin.Exec(ctx, fill, o.OrganizationID, o.GatewayID, f.status, f.n); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := admin.Exec(ctx, `VACUUM ANALYZE gateway_commands`); err != nil {
				b.Fatal(err)
			}
			pool, err := postgres.Connect(ctx, db.IngestURL, 2, pg.ContextKey())
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			s := commandqueue.NewDepthSampler(pool, prometheus.NewRegistry(), nil)
			b.Run("sampler", func(b *testing.B) {
				for b.Loop() {
					got, err := s.Sample(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if len(got) != 14 {
						b.Fatalf("%d groups, want 14", len(got))
					}
				}
			})
			// The function's statement against its first form (one
			// status IN (...) query, which no partial index matches), as
			// the administrator, side by side.
			for _, q := range []struct{ name, sql string }{
				{"statement=in-list", `SELECT c.status, c.type, count(*), min(c.created_at) FROM gateway_commands c
					WHERE c.status IN ('pending', 'delivered') GROUP BY c.status, c.type ORDER BY 1, 2`},
				{"statement=union", `SELECT 'delivered'::text, c.type, count(*), min(c.created_at) FROM gateway_commands c WHERE c.status = 'delivered' GROUP BY c.type
					UNION ALL SELECT 'pending'::text, c.type, count(*), min(c.created_at) FROM gateway_commands c WHERE c.status = 'pending' GROUP BY c.type ORDER BY 1, 2`},
			} {
				b.Run(q.name, func(b *testing.B) {
					for b.Loop() {
						rows, err := admin.Query(ctx, q.sql)
						if err != nil {
							b.Fatal(err)
						}
						n := 0
						for rows.Next() {
							n++
						}
						if rows.Close(); rows.Err() != nil || n != 14 {
							b.Fatalf("%d groups (%v), want 14", n, rows.Err())
						}
					}
				})
			}
		})
	}
}
