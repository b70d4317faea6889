package timeseries_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) {
	if os.Getenv(envHelper) == "1" {
		// A re-sync helper process needs no cluster of its own.
		os.Exit(m.Run())
	}
	pgtest.Main(m, &pg)
}

func partitions(ctx context.Context, t *testing.T, conn *pgx.Conn, table string) []string {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = ('monitoring.' || $1)::regclass ORDER BY 1`, table)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestMaintainerCreatesAheadAndDropsByRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	pool, err := postgres.Connect(ctx, db.IngestURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	m := timeseries.NewMaintainer(pool, logtest.New(t), prometheus.NewRegistry(), 8, 3)

	// 100 days from now: the windows and sites (90 days) and screenshots
	// (30 days) of today are expired; sessions and device events (365) not.
	base := time.Now().UTC()
	later := base.AddDate(0, 0, 100)
	today := "_p" + base.Format("20060102")
	res, err := m.RunOnce(ctx, later)
	if err != nil {
		t.Fatal(err)
	}
	// 12 new days (later-8 .. later+3) for each of the 5 tables, in both
	// the time-series and the fallback schema.
	if res.Created != 120 {
		t.Errorf("created %d partitions, want 120", res.Created)
	}
	dropped := strings.Join(res.Dropped, ",")
	for _, want := range []string{"monitoring.active_windows" + today, "monitoring.visited_sites" + today, "monitoring.screenshots" + today,
		"monitoring_fallback.active_windows" + today, "monitoring_fallback.screenshots" + today} {
		if !strings.Contains(dropped, want) {
			t.Errorf("%s not dropped (dropped: %s)", want, dropped)
		}
	}
	for _, keep := range []string{"user_sessions" + today, "device_events" + today} {
		if strings.Contains(dropped, keep) {
			t.Errorf("%s dropped before its 365-day retention", keep)
		}
	}
	aw := partitions(ctx, t, admin, "active_windows")
	if len(aw) != 12 {
		t.Errorf("active_windows has %d partitions after maintenance, want the 12 around the new date: %v", len(aw), aw)
	}
	// Events for the new dates land in their partitions through the parent.
	if _, err := pool.Exec(ctx, `INSERT INTO monitoring.user_sessions (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
		VALUES (gen_random_uuid(), 1, gen_random_uuid(), 1, 'a', 'c', 's', 'login', $1)`, later.Add(2*24*time.Hour)); err != nil {
		t.Fatalf("insert into a partition created ahead: %v", err)
	}
	// A second run is a no-op.
	res, err = m.RunOnce(ctx, later)
	if err != nil || res.Created != 0 || len(res.Dropped) != 0 {
		t.Fatalf("second run: %+v, %v; want nothing to do", res, err)
	}
}
