package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
)

// TestInsertFunctionRacesAndDuplicates checks migration 00043's insert
// path (a plain INSERT, redone with ON CONFLICT DO NOTHING only when a row
// is already stored) on what the speculative insert handled by itself: a
// concurrent call inserting the same events (waiting for the other
// transaction, then falling back when it commits, or inserting when it
// rolls back), an event twice in one call, and events stored before. Every
// event ends up stored once, and each call counts what it inserted.
func TestInsertFunctionRacesAndDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	ctx := context.Background()
	pool, err := postgres.Connect(ctx, e.ingestURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	now := time.Now().UTC()
	if _, err := timeseries.NewDays(time.Minute, time.Now).EnsureDays(ctx, pool, timeseries.SchemaStore, []string{"user_sessions"},
		[]time.Time{timeseries.DayOf(now)}); err != nil {
		t.Fatal(err)
	}
	tenant := postgres.Tenant{OrganizationID: e.a.org}
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = uuid.NewString()
		}
		return out
	}
	// insert calls insert_user_sessions for ids in tx.
	insert := func(tx pgx.Tx, ids []string) (int, error) {
		n := len(ids)
		seqs, texts, times := make([]int64, n), make([]string, n), make([]time.Time, n)
		for i := range ids {
			seqs[i], texts[i], times[i] = int64(i+1), "x", now
		}
		var got int
		err := tx.QueryRow(ctx, `SELECT monitoring.insert_user_sessions('monitoring', $1, $2, $3::uuid[], $4, $5, $5, $5, $6, $7)`,
			e.a.org, e.a.id, ids, seqs, texts, fill(n, "logon"), times).Scan(&got)
		return got, err
	}
	begin := func(p *pgxpool.Pool) pgx.Tx {
		tx, err := p.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := postgres.SetTenant(ctx, tx, tenant); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	stored := func(ids []string) int {
		return e.count(`SELECT count(*)::int FROM monitoring.user_sessions WHERE organization_id = $1 AND id = ANY($2::uuid[])`, e.a.org, ids)
	}

	for _, firstCommits := range []bool{true, false} {
		shared, extra := ids(50), ids(1)
		tx1 := begin(pool)
		if n, err := insert(tx1, shared); err != nil || n != len(shared) {
			t.Fatalf("first call: %d, %v; want %d", n, err, len(shared))
		}
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		go func() {
			tx2, err := pool.Begin(ctx)
			if err == nil {
				err = postgres.SetTenant(ctx, tx2, tenant)
			}
			if err != nil {
				done <- result{err: err}
				return
			}
			defer func() { _ = tx2.Rollback(ctx) }()
			// The shared events first (in id order as ingest sends them,
			// the new one last): the call waits on tx1's first key.
			n, err := insert(tx2, append(append([]string{}, shared...), extra...))
			if err == nil {
				err = tx2.Commit(ctx)
			}
			done <- result{n, err}
		}()
		// Wait until the second call waits for the first transaction.
		deadline := time.Now().Add(20 * time.Second)
		for e.count(`SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%insert_user_sessions%'`) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the second call never waited for the first transaction")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if firstCommits {
			if err := tx1.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		} else if err := tx1.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		r := <-done
		want := 1 // the new event; the shared ones are tx1's
		if !firstCommits {
			want = len(shared) + 1
		}
		if r.err != nil || r.n != want {
			t.Errorf("first commits %v: the waiting call inserted %d, %v; want %d, nil", firstCommits, r.n, r.err, want)
		}
		if got := stored(append(shared, extra...)); got != len(shared)+1 {
			t.Errorf("first commits %v: %d rows stored, want %d (each event once)", firstCommits, got, len(shared)+1)
		}
	}

	// An event twice in one call, and a call of stored and new events.
	tx := begin(pool)
	defer func() { _ = tx.Rollback(ctx) }()
	twice := ids(3)
	if n, err := insert(tx, []string{twice[0], twice[1], twice[1], twice[2]}); err != nil || n != 3 {
		t.Fatalf("a call with an event twice inserted %d, %v; want 3", n, err)
	}
	fresh := ids(2)
	if n, err := insert(tx, append(append([]string{}, twice...), fresh...)); err != nil || n != 2 {
		t.Fatalf("a call of 3 stored and 2 new events inserted %d, %v; want 2", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stored(append(twice, fresh...)); got != 5 {
		t.Errorf("%d rows stored, want 5", got)
	}
}

func fill(n int, s string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
