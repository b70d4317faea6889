package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// reportData generates eight working days (08:00–17:00 UTC, the eight days
// before today) of two organisations of 40 users each, as admin (it
// bypasses the insert checks): an active window every 30 s and a visited
// site every 60 s per user (skewed choices among 15 applications and 200
// sites), a screenshot every 5 minutes (a random SHA-256 each), six
// session events and four badge-ins per user and day. About 1.1 million
// rows; random() is seeded, so both engines get the same values (ids are
// random uuids).
const reportData = `
SELECT setseed(0.12);
CREATE TABLE bench_users AS
    SELECT g.organization_id AS org, g.id AS gw, u,
           'S-1-5-21-' || g.organization_id || '-' || (1000 + u) AS sid,
           'PC-' || g.organization_id || '-' || lpad(u::text, 3, '0') AS pc,
           'agent-' || g.organization_id || '-' || u AS agent
    FROM gateway_instances g, generate_series(1, 40) u ORDER BY 1, 3;
CREATE TABLE bench_days AS
    SELECT d, row_number() OVER (ORDER BY d) - 1 AS n
    FROM generate_series(date_trunc('day', now(), 'UTC') - interval '8 days',
                         date_trunc('day', now(), 'UTC') - interval '1 day', interval '1 day') d;
INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid,
        window_title, process_name, datetime, duration_seconds)
    SELECT gen_random_uuid(), org, gw, n * 1080 + s, agent, pc, sid,
           (ARRAY['main.go — project', 'Inbox — Outlook', 'Budget.xlsx', 'Google Chrome', 'Slack', 'Terminal',
                  'Report.docx', 'Teams meeting', 'Figma', 'Jira board', 'Notepad', 'Explorer', 'Zoom', 'Acrobat', 'Spotify'])[app]
               || ' ' || (1 + floor(random() * 40))::int,
           (ARRAY['code.exe', 'outlook.exe', 'excel.exe', 'chrome.exe', 'slack.exe', 'wt.exe', 'winword.exe', 'teams.exe',
                  'figma.exe', 'chrome.exe', 'notepad.exe', 'explorer.exe', 'zoom.exe', 'acrord32.exe', 'spotify.exe'])[app],
           d + interval '8 hours' + s * interval '30 seconds' + floor(random() * 5) * interval '1 second',
           5 + floor(random() * 26)::int
    FROM (SELECT u.*, dd.d, dd.n, s, 1 + floor(power(random(), 2) * 15)::int AS app
          FROM bench_users u, bench_days dd, generate_series(0, 1079) s) x;
INSERT INTO monitoring.visited_sites (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid,
        url, title, datetime, duration_seconds)
    SELECT gen_random_uuid(), org, gw, n * 540 + s, agent, pc, sid,
           'https://site' || site || '.example.com/page/' || (1 + floor(random() * 100))::int, 'Site ' || site,
           d + interval '8 hours' + s * interval '60 seconds' + floor(random() * 10) * interval '1 second',
           10 + floor(random() * 50)::int
    FROM (SELECT u.*, dd.d, dd.n, s, floor(power(random(), 3) * 200)::int AS site
          FROM bench_users u, bench_days dd, generate_series(0, 539) s) x;
INSERT INTO monitoring.screenshots (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid,
        file_path, file_size, sha256, datetime)
    SELECT gen_random_uuid(), org, gw, n * 108 + s, agent, pc, sid,
           'screenshots/' || org || '/' || to_char(d, 'YYYY-MM-DD') || '/' || gen_random_uuid() || '-1.jpg',
           40000 + floor(random() * 80000)::bigint, encode(sha256(random()::text::bytea), 'hex'),
           d + interval '8 hours' + s * interval '5 minutes'
    FROM bench_users u, bench_days dd, generate_series(0, 107) s;
INSERT INTO monitoring.user_sessions (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid,
        session_type, datetime)
    SELECT gen_random_uuid(), org, gw, n * 6 + k, agent, pc, sid,
           (ARRAY['login', 'lock', 'unlock', 'lock', 'unlock', 'logout'])[k + 1],
           d + (ARRAY[interval '7 hours 55 minutes', interval '12 hours', interval '12 hours 45 minutes',
                      interval '15 hours', interval '15 hours 10 minutes', interval '17 hours 5 minutes'])[k + 1]
             + floor(random() * 300) * interval '1 second'
    FROM bench_users u, bench_days dd, generate_series(0, 5) k;
INSERT INTO monitoring.device_events (id, organization_id, gateway_id, seq, device_serial, datetime, employee_number,
        card_number, door, major_code, minor_code, verify_mode, direction)
    SELECT gen_random_uuid(), org, gw, n * 4 + k, 'DS-K1T' || org, d + interval '7 hours 50 minutes' + k * interval '3 hours'
             + floor(random() * 600) * interval '1 second',
           'E-' || u, lpad((org * 10000 + u)::text, 10, '0'), 1 + k % 2, 5, 75, 'card', (ARRAY['in', 'out'])[1 + k % 2]
    FROM bench_users u, bench_days dd, generate_series(0, 3) k;
DROP TABLE bench_users, bench_days;
ANALYZE`

// reportQueries are the dashboard's report shapes over the seven full days
// before today ($1, $2), read as the dashboard role through
// monitoring_read in an organisation's verified context.
var reportQueries = []struct{ name, sql string }{
	{"hourly-per-user-7d", `SELECT user_sid, bucket, sum(window_events)::bigint, sum(active_seconds)::bigint
		FROM monitoring_read.activity_hourly WHERE bucket >= $1 AND bucket < $2 GROUP BY 1, 2 ORDER BY 1, 2`},
	{"top-sites-7d", `SELECT split_part(url, '/', 3) AS site, count(*), sum(duration_seconds)
		FROM monitoring_read.visited_sites WHERE datetime >= $1 AND datetime < $2 GROUP BY 1 ORDER BY 3 DESC, 1 LIMIT 20`},
	{"per-user-counts-7d", `SELECT user_sid, count(*), sum(duration_seconds)
		FROM monitoring_read.active_windows WHERE datetime >= $1 AND datetime < $2 GROUP BY 1 ORDER BY 1`},
}

// BenchmarkTimescaleReports measures the storage and the report queries of
// realistic data (reportData) on the engine the test server gives:
//
//   - native partitions: the queries (sub-benchmarks partitions/…);
//   - TimescaleDB: the queries on uncompressed hypertables (the hourly
//     aggregate never refreshed, so it reads the raw rows in real time —
//     what a server whose background jobs fail gives), then after every
//     full day's chunk is compressed, then with the aggregate refreshed;
//     and the compression ratio per table (hypertable_compression_stats).
//
// Each sub-benchmark reports the median of its b.N executions; the answers
// must be the same in every TimescaleDB state (a digest of each answer is
// logged, for comparing the engines too). Run it on both engines, in one
// sitting:
//
//	go test ./internal/cloud/postgres -run '^$' -bench TimescaleReports -benchtime 10x
//	TEST_DATABASE_URL=<TimescaleDB server> go test ./internal/cloud/postgres -run '^$' -bench TimescaleReports -benchtime 10x
func BenchmarkTimescaleReports(b *testing.B) {
	ctx := context.Background()
	db := pg.NewDatabase(b)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	var kind string
	if err := admin.QueryRow(ctx, `SELECT monitoring.storage_kind()`).Scan(&kind); err != nil {
		b.Fatal(err)
	}
	seeded, err := pgtest.SeedOrganization(ctx, admin, "alpha")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pgtest.SeedOrganization(ctx, admin, "beta"); err != nil {
		b.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `SELECT monitoring.ensure_recent_partitions(9, 1)`); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if _, err := admin.Exec(ctx, reportData); err != nil {
		b.Fatalf("generate: %v", err)
	}
	loaded := time.Since(t0)
	storage(b, admin, kind, kind+"-as-loaded", fmt.Sprintf("generated in %v", loaded.Round(100*time.Millisecond)))

	pool, err := postgres.Connect(ctx, db.DashboardURL, 1, pg.ContextKey())
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	var from, to time.Time
	if err := admin.QueryRow(ctx, `SELECT date_trunc('day', now(), 'UTC') - interval '7 days', date_trunc('day', now(), 'UTC')`).Scan(&from, &to); err != nil {
		b.Fatal(err)
	}
	tenant := postgres.Tenant{OrganizationID: seeded.OrganizationID, Role: postgres.AppOrgAdmin, UserID: seeded.UserID}
	digests := map[string]string{}
	measure := func(state string) {
		for _, q := range reportQueries {
			b.Run(state+"/"+q.name, func(b *testing.B) {
				var (
					times  []time.Duration
					digest string
					n      int
				)
				for i := 0; i < b.N; i++ {
					t := time.Now()
					var d string
					d, n = runReport(b, pool, tenant, q.sql, from, to)
					times = append(times, time.Since(t))
					if digest != "" && d != digest {
						b.Fatalf("%s: answers differ between executions", q.name)
					}
					digest = d
				}
				slices.Sort(times)
				b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
				b.ReportMetric(float64(n), "rows")
				if prev, ok := digests[q.name]; ok && prev != digest {
					b.Fatalf("%s answers %s in state %s, %s before: the engine's states must answer alike", q.name, digest, state, prev)
				}
				digests[q.name] = digest
				b.Logf("%s %s: %d rows, answer digest %s", state, q.name, n, digest)
			})
		}
	}
	if kind != "timescaledb" {
		measure("partitions")
		return
	}
	measure("timescaledb-uncompressed")
	t0 = time.Now()
	var compressed int
	err = admin.QueryRow(ctx, `SELECT count(compress_chunk(c))
		FROM (SELECT show_chunks(format('monitoring.%I', table_name)::regclass, older_than => date_trunc('day', now(), 'UTC')) c
		      FROM monitoring.retention) x`).Scan(&compressed)
	if err != nil {
		b.Fatalf("compress: %v", err)
	}
	if _, err := admin.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	storage(b, admin, kind, "timescaledb-compressed", fmt.Sprintf("compressed %d chunks in %v", compressed, time.Since(t0).Round(100*time.Millisecond)))
	measure("timescaledb-compressed")
	if _, err := admin.Exec(ctx, `CALL refresh_continuous_aggregate('monitoring.activity_hourly', NULL, date_trunc('hour', now()))`); err != nil {
		b.Fatalf("refresh: %v", err)
	}
	measure("timescaledb-compressed-aggregate-refreshed")
}

// runReport runs one report query in tenant's context and returns a digest
// of its answer and its row count.
func runReport(b *testing.B, pool postgres.Beginner, tenant postgres.Tenant, sql string, from, to time.Time) (string, int) {
	b.Helper()
	ctx := context.Background()
	h := sha256.New()
	n := 0
	err := postgres.InTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, from, to)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				return err
			}
			for _, v := range vals {
				if t, ok := v.(time.Time); ok {
					v = t.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(h, "%v|", v)
			}
			h.Write([]byte{'\n'})
			n++
		}
		return rows.Err()
	})
	if err != nil {
		b.Fatal(err)
	}
	if n == 0 {
		b.Fatal("a report answered no rows")
	}
	return hex.EncodeToString(h.Sum(nil))[:12], n
}

// storage reports, as the sub-benchmark state/storage, each series' rows
// and bytes and, on TimescaleDB, the compression stats of its compressed
// chunks (MiB: all series; x-compression: bytes before / after of the
// compressed chunks), with note.
func storage(b *testing.B, admin *pgx.Conn, kind, state, note string) {
	b.Helper()
	ctx := context.Background()
	q := `SELECT r.table_name, (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = format('monitoring.%I', r.table_name)::regclass),
		       coalesce((SELECT sum(pg_total_relation_size(i.inhrelid)) FROM pg_inherits i
		                 WHERE i.inhparent = format('monitoring.%I', r.table_name)::regclass), 0)::bigint, 0::bigint, 0::bigint, 0::bigint
		FROM monitoring.retention r ORDER BY 1`
	if kind == "timescaledb" {
		q = `SELECT r.table_name, s.total_chunks, hypertable_size(format('monitoring.%I', r.table_name)::regclass),
		           s.number_compressed_chunks, coalesce(s.before_compression_total_bytes, 0), coalesce(s.after_compression_total_bytes, 0)
			FROM monitoring.retention r, hypertable_compression_stats(format('monitoring.%I', r.table_name)::regclass) s ORDER BY 1`
	}
	type series struct {
		table                          string
		parts, compressedParts         int64
		size, beforeComp, afterComp, n int64
	}
	rows, err := admin.Query(ctx, q)
	if err != nil {
		b.Fatal(err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (series, error) {
		var s series
		err := r.Scan(&s.table, &s.parts, &s.size, &s.compressedParts, &s.beforeComp, &s.afterComp)
		return s, err
	})
	if err != nil {
		b.Fatal(err)
	}
	var lines []string
	var total, before, after int64
	for _, s := range all {
		if err := admin.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM monitoring.%s`, pgx.Identifier{s.table}.Sanitize())).Scan(&s.n); err != nil {
			b.Fatal(err)
		}
		line := fmt.Sprintf("%s: %d rows, %d chunks/partitions, %.1f MiB", s.table, s.n, s.parts, float64(s.size)/(1<<20))
		if s.compressedParts > 0 {
			line += fmt.Sprintf("; %d compressed: %.1f → %.1f MiB (%.1fx)", s.compressedParts, float64(s.beforeComp)/(1<<20),
				float64(s.afterComp)/(1<<20), float64(s.beforeComp)/float64(s.afterComp))
		}
		lines = append(lines, line)
		total += s.size
		before += s.beforeComp
		after += s.afterComp
	}
	summary := fmt.Sprintf("%s: %.1f MiB in all", note, float64(total)/(1<<20))
	if after > 0 {
		summary += fmt.Sprintf("; compressed chunks %.1f → %.1f MiB (%.1fx)", float64(before)/(1<<20), float64(after)/(1<<20), float64(before)/float64(after))
	}
	b.Run(state+"/storage", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
		}
		b.ReportMetric(float64(total)/(1<<20), "MiB")
		if after > 0 {
			b.ReportMetric(float64(before)/float64(after), "x-compression")
		}
		b.Logf("%s\n\t%s", summary, strings.Join(lines, "\n\t"))
	})
}
