package timeseries_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
)

// Environment of the re-sync helper process.
const (
	envHelper = "RESYNC_HELPER"
	envMain   = "RESYNC_MAIN_URL"
	envTS     = "RESYNC_TS_URL"
	envKey    = "RESYNC_CONTEXT_KEY"
)

// execAs runs one statement in organisation org's signed context.
func execAs(ctx context.Context, t *testing.T, pool *pgxpool.Pool, org int64, sql string, args ...any) {
	t.Helper()
	if err := postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: org}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql, args...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// insertSession inserts, with the ingest role's insert function into
// schema %s, one user session: id $1 (also its gateway), organisation $2,
// seq $3, computer $4, session type $5, time $6.
const insertSession = `SELECT monitoring.insert_user_sessions('%s', $2::bigint, $1::uuid, ARRAY[$1::uuid], ARRAY[$3::bigint], ARRAY['a'],
	ARRAY[$4::text], ARRAY['S-1'], ARRAY[$5::text], ARRAY[$6::timestamptz])`

// adminConn connects to url as the test server's administrator.
func adminConn(ctx context.Context, t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestResyncHelperProcess is not a test: run by TestResyncSurvivesKills as
// a separate process, it re-syncs until done or killed.
func TestResyncHelperProcess(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("helper process for TestResyncSurvivesKills")
	}
	ctx := context.Background()
	key, err := postgres.ParseContextKey(os.Getenv(envKey))
	if err != nil {
		t.Fatal(err)
	}
	main, err := postgres.Connect(ctx, os.Getenv(envMain), 2, key)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := postgres.Connect(ctx, os.Getenv(envTS), 2, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := timeseries.Resync(ctx, main, ts, 100, timeseries.NewResyncCounters(prometheus.NewRegistry())); err != nil {
		t.Fatal(err)
	}
}

// TestResyncSurvivesKills fills the fallback partitions, then SIGKILLs the
// re-syncing process five times at random instants; a last run completes.
// Afterwards every event is in the store exactly once (events the store
// already held before the outage included) and the fallback is empty.
func TestResyncSurvivesKills(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mainDB, tsDB := pg.NewDatabase(t), pg.NewDatabase(t)
	main, err := pgx.Connect(ctx, mainDB.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer main.Close(ctx)
	ts, err := pgx.Connect(ctx, tsDB.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close(ctx)

	// 12,000 fallback events over three days in two tables; 250 of them
	// the store already holds (written before the outage, another ingested_at).
	gw := uuid.New()
	now := time.Now().UTC()
	if _, err := main.Exec(ctx, `INSERT INTO monitoring_fallback.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, process_name, window_title, datetime, duration_seconds)
		SELECT gen_random_uuid(), 1, $1, g, 'a', 'PC', 'S-1', 'x.exe', 'title ' || g, $2::timestamptz - make_interval(days => g % 3, secs => g), 7
		FROM generate_series(1, 6000) g`, gw, now); err != nil {
		t.Fatal(err)
	}
	if _, err := main.Exec(ctx, `INSERT INTO monitoring_fallback.device_events (id, organization_id, gateway_id, seq, device_serial, datetime, card_number, door, major_code, minor_code)
		SELECT gen_random_uuid(), 1, $1, 6000 + g, 'DS-1', $2::timestamptz - make_interval(days => g % 3, secs => g), (100000 + g)::text, 1, 5, 75
		FROM generate_series(1, 6000) g`, gw, now); err != nil {
		t.Fatal(err)
	}
	var pre []byte
	if err := main.QueryRow(ctx, `SELECT jsonb_agg(to_jsonb(f)) FROM monitoring_fallback.active_windows f WHERE seq % 24 = 0`).Scan(&pre); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Exec(ctx, `INSERT INTO monitoring.active_windows SELECT * FROM jsonb_populate_recordset(NULL::monitoring.active_windows, $1::jsonb)`, pre); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Exec(ctx, `UPDATE monitoring.active_windows SET ingested_at = ingested_at - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	idRows, err := main.Query(ctx, `SELECT id::text FROM monitoring_fallback.active_windows UNION ALL SELECT id::text FROM monitoring_fallback.device_events`)
	if err != nil {
		t.Fatal(err)
	}
	for idRows.Next() {
		var id string
		_ = idRows.Scan(&id)
		want[id] = true
	}
	idRows.Close()
	if len(want) != 12000 {
		t.Fatalf("seeded %d events, want 12000", len(want))
	}
	fallbackRows := func() int {
		var n int
		if err := main.QueryRow(ctx, `SELECT ((SELECT count(*) FROM monitoring_fallback.active_windows) + (SELECT count(*) FROM monitoring_fallback.device_events))::int`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// run starts a re-sync process. With kill set, it waits (bounded) until
	// the process has moved at least one chunk — so a slow start on a busy
	// machine does not make every kill land before any work — then lets it
	// run a random 0–60 ms more and SIGKILLs it.
	run := func(kill bool, extra time.Duration) error {
		start := fallbackRows()
		cmd := exec.Command(os.Args[0], "-test.run=^TestResyncHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), envHelper+"=1", envMain+"="+mainDB.IngestURL, envTS+"="+tsDB.IngestURL, envKey+"="+pg.ContextKey().String())
		if err := cmd.Start(); err != nil {
			return err
		}
		if !kill {
			return cmd.Wait()
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		deadline := time.Now().Add(60 * time.Second)
	wait:
		for fallbackRows() >= start && time.Now().Before(deadline) {
			select {
			case <-exited:
				break wait
			case <-time.After(5 * time.Millisecond):
			}
		}
		time.Sleep(extra)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return nil
	}
	rng := rand.New(rand.NewPCG(7, 11))
	before := fallbackRows()
	midway := 0
	for i := 0; i < 5; i++ {
		if err := run(true, time.Duration(rng.IntN(60))*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		left := fallbackRows()
		if left > 0 && left < before {
			midway++
		}
		before = left
	}
	if midway < 3 {
		t.Errorf("only %d of 5 kills landed mid-way through the re-sync; the test does not prove what it claims", midway)
	}
	if err := run(false, 0); err != nil {
		t.Fatalf("final re-sync: %v", err)
	}
	if n := fallbackRows(); n != 0 {
		t.Fatalf("%d rows left in the fallback", n)
	}
	got := map[string]int{}
	rows, err := ts.Query(ctx, `SELECT id::text FROM monitoring.active_windows UNION ALL SELECT id::text FROM monitoring.device_events`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		got[id]++
	}
	rows.Close()
	if len(got) != len(want) {
		t.Errorf("store holds %d events, want %d", len(got), len(want))
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("event %s in the store %d times, want exactly once", id, got[id])
		}
	}
}

// TestResyncKeepsRowsThatFailVerification: a store row with the same id
// but other content makes the chunk fail verification; nothing is deleted.
func TestResyncKeepsRowsThatFailVerification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mainDB, tsDB := pg.NewDatabase(t), pg.NewDatabase(t)
	mainPool, err := postgres.Connect(ctx, mainDB.IngestURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer mainPool.Close()
	tsPool, err := postgres.Connect(ctx, tsDB.IngestURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer tsPool.Close()
	id, at := uuid.New(), time.Now().UTC()
	execAs(ctx, t, mainPool, 1, fmt.Sprintf(insertSession, "monitoring_fallback"), id, 1, 1, "PC", "login", at)
	execAs(ctx, t, tsPool, 1, fmt.Sprintf(insertSession, "monitoring"), id, 1, 1, "PC", "logout", at)
	_, err = timeseries.Resync(ctx, mainPool, tsPool, 10, timeseries.NewResyncCounters(prometheus.NewRegistry()))
	if err == nil {
		t.Fatal("re-sync verified rows whose content differs")
	}
	var left int
	if err := adminConn(ctx, t, mainDB.AdminURL).QueryRow(ctx, `SELECT count(*) FROM monitoring_fallback.user_sessions`).Scan(&left); err != nil || left != 1 {
		t.Fatalf("fallback rows after a failed verification: %d (%v), want the row kept", left, err)
	}
}

// TestResyncHandlesOneIDInTwoOrganisations: an event id is unique only
// within its organisation. The fallback holds, for each of 7 ids and times,
// an event of organisation 1 and one of organisation 2 (chunks of 3 split
// them apart), and the store already holds organisation 3's event under
// each; re-sync copies every row, verifies, empties the fallback and leaves
// organisation 3's rows as they were.
func TestResyncHandlesOneIDInTwoOrganisations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mainDB, tsDB := pg.NewDatabase(t), pg.NewDatabase(t)
	mainPool, err := postgres.Connect(ctx, mainDB.IngestURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer mainPool.Close()
	tsPool, err := postgres.Connect(ctx, tsDB.IngestURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer tsPool.Close()
	at := time.Now().UTC().Truncate(time.Microsecond)
	for i := range 7 {
		id, when := uuid.New(), at.Add(-time.Duration(i)*time.Second)
		for _, org := range []int64{1, 2} {
			execAs(ctx, t, mainPool, org, fmt.Sprintf(insertSession, "monitoring_fallback"), id, org, i+1, fmt.Sprintf("PC-%d", org), "login", when)
		}
		if _, err := tsPool.Exec(ctx, `SELECT monitoring.ensure_day_partitions('monitoring', ARRAY['user_sessions'], ARRAY[$1::date])`, when); err != nil {
			t.Fatal(err)
		}
		execAs(ctx, t, tsPool, 3, fmt.Sprintf(insertSession, "monitoring"), id, 3, i+1, "PC-3", "login", when)
	}
	res, err := timeseries.Resync(ctx, mainPool, tsPool, 3, timeseries.NewResyncCounters(prometheus.NewRegistry()))
	if err != nil {
		t.Fatalf("re-sync: %v", err)
	}
	if res.Copied != 14 {
		t.Errorf("copied %d rows, want 14", res.Copied)
	}
	var left int
	if err := adminConn(ctx, t, mainDB.AdminURL).QueryRow(ctx, `SELECT count(*) FROM monitoring_fallback.user_sessions`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("fallback rows after re-sync: %d (%v), want 0", left, err)
	}
	for _, org := range []int64{1, 2, 3} {
		var n, ids int
		if err := adminConn(ctx, t, tsDB.AdminURL).QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM monitoring.user_sessions
			WHERE organization_id = $1 AND computer_uid = 'PC-' || $1`, org).Scan(&n, &ids); err != nil {
			t.Fatal(err)
		}
		if n != 7 || ids != 7 {
			t.Errorf("organisation %d: %d rows with %d ids in the store, want 7 and 7", org, n, ids)
		}
	}
}
