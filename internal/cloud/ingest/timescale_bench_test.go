package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// BenchmarkInsertCheck measures what the organisation check of time-series
// inserts costs since migration 00020: the ingest role inserts through the
// bounded definer function of each series, which verifies the signed tenant
// context once per call (app.org_id(), the HMAC in plpgsql) and then runs a
// static INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING. Two paths,
// the same 1,000 active_windows rows per statement sent as the same column
// arrays, 4 at a time:
//
//   - function: SELECT monitoring.insert_active_windows('monitoring', …) as
//     staff_ingest in its verified context (what ingest runs);
//   - owner: the same INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING
//     sent by the owner itself, which nothing checks (row-level security
//     exempts it on native partitions; hypertables have no trigger since
//     00020): the bare insert, the floor the function is measured against.
//
// Before either runs it checks that the function still refuses another
// organisation's rows (42501), so that the path measured is the checked
// one. Runs on whichever engine the test server gives: TEST_DATABASE_URL at
// a server that preloads TimescaleDB for hypertables. (Until 00020 the
// check on hypertables was a row trigger verifying the context per row:
// 0.12x a bare insert; docs/benchmarks.md.)
func BenchmarkInsertCheck(b *testing.B) {
	const perBatch = 1000
	ctx := context.Background()
	e := newEnv(b, ingest.DefaultLimits())
	var kind string
	if err := e.admin.QueryRow(ctx, `SELECT monitoring.storage_kind()`).Scan(&kind); err != nil {
		b.Fatal(err)
	}
	ingestPool, err := postgres.Connect(ctx, e.ingestURL, benchWorkers, pg.ContextKey())
	if err != nil {
		b.Fatal(err)
	}
	defer ingestPool.Close()
	ownerPool, err := pgxpool.New(ctx, e.ownerURL)
	if err != nil {
		b.Fatal(err)
	}
	defer ownerPool.Close()
	// Today's and yesterday's partitions (a no-op on TimescaleDB).
	if _, err := ingestPool.Exec(ctx, `SELECT monitoring.ensure_recent_partitions(1, 1)`); err != nil {
		b.Fatal(err)
	}
	gw := uuid.MustParse(e.a.id)
	const function = `SELECT monitoring.insert_active_windows('monitoring', $1, $2, $3::uuid[], $4::bigint[], $5::text[], $6::text[],
		$7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::integer[])`
	const owner = `INSERT INTO monitoring.active_windows
		    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
		SELECT t.id, $1, $2, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.window_title, t.process_name, t.url, t.datetime, t.duration_seconds
		FROM unnest($3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::integer[])
		    AS t(id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
		ON CONFLICT DO NOTHING`
	var pgErr *pgconn.PgError
	err = postgres.InTenant(ctx, ingestPool, postgres.Tenant{OrganizationID: e.a.org}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, function, append([]any{e.b.org, gw}, activeWindowArrays(1, 0)...)...)
		return err
	})
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		b.Fatalf("another organisation's rows through the function: %v, want 42501", err)
	}
	for _, path := range []string{"function", "owner"} {
		b.Run(kind+"/"+path+"/sql", func(b *testing.B) {
			batches := make([][]any, b.N)
			for i := range batches {
				batches[i] = append([]any{e.a.org, gw}, activeWindowArrays(perBatch, int64(i)*perBatch)...)
			}
			var inserted atomic.Int64
			runConcurrently(b, perBatch, nil, func(i int) error {
				if path == "owner" {
					tag, err := ownerPool.Exec(ctx, owner, batches[i]...)
					inserted.Add(tag.RowsAffected())
					return err
				}
				return postgres.InTenant(ctx, ingestPool, postgres.Tenant{OrganizationID: e.a.org}, func(tx pgx.Tx) error {
					var n int64
					err := tx.QueryRow(ctx, function, batches[i]...).Scan(&n)
					inserted.Add(n)
					return err
				})
			})
			if got := inserted.Load(); got != int64(b.N*perBatch) {
				b.Errorf("%d rows inserted, want %d", got, b.N*perBatch)
			}
		})
	}
}

// activeWindowArrays are n fresh active windows of the last n seconds, as
// the column arrays of the active_windows insert (columns.go's order), seq
// numbers from first+1.
func activeWindowArrays(n int, first int64) []any {
	ids, seqs := make([]string, n), make([]int64, n)
	agents, computers, sids := make([]string, n), make([]string, n), make([]string, n)
	titles, procs, urls := make([]*string, n), make([]*string, n), make([]*string, n)
	times, durs := make([]time.Time, n), make([]int32, n)
	now := time.Now()
	title, proc := "main.go", "code.exe"
	for i := range n {
		ids[i], seqs[i] = uuid.Must(uuid.NewV7()).String(), first+int64(i)+1
		agents[i], computers[i], sids[i] = fmt.Sprintf("agent-%d", i%7), fmt.Sprintf("PC-%d", i%7), fmt.Sprintf("S-1-5-21-100-%d", i%7)
		titles[i], procs[i] = &title, &proc
		times[i], durs[i] = now.Add(-time.Duration(i)*time.Second), 30
	}
	return []any{ids, seqs, agents, computers, sids, titles, procs, urls, times, durs}
}
