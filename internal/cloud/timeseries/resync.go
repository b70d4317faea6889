package timeseries

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Tables are the time series, in re-sync order.
func Tables() []string {
	return []string{"active_windows", "visited_sites", "screenshots", "user_sessions", "device_events"}
}

// ResyncCounters are the re-sync's metrics.
type ResyncCounters struct {
	copied    prometheus.Counter
	chunks    prometheus.Counter
	mismatch  prometheus.Counter
	remaining prometheus.Gauge
}

// NewResyncCounters returns re-sync metrics registered with reg.
func NewResyncCounters(reg prometheus.Registerer) *ResyncCounters {
	m := &ResyncCounters{
		copied: prometheus.NewCounter(prometheus.CounterOpts{Name: "timeseries_resync_rows_total",
			Help: "Fallback rows copied back to the time-series store, verified and removed."}),
		chunks: prometheus.NewCounter(prometheus.CounterOpts{Name: "timeseries_resync_chunks_total",
			Help: "Re-sync chunks verified by count and checksum."}),
		mismatch: prometheus.NewCounter(prometheus.CounterOpts{Name: "timeseries_resync_mismatches_total",
			Help: "Re-sync chunks whose count or checksum differed between the stores (the rows stay in fallback)."}),
		remaining: prometheus.NewGauge(prometheus.GaugeOpts{Name: "timeseries_resync_remaining_rows",
			Help: "Rows left in the fallback partitions at the last re-sync step."}),
	}
	reg.MustRegister(m.copied, m.chunks, m.mismatch, m.remaining)
	return m
}

// ResyncResult is what a re-sync did.
type ResyncResult struct {
	Copied int64
	Chunks int
}

// Resync copies every row of the fallback partitions (main database) to the
// time-series store and removes it from the fallback, one chunk of one
// table and day at a time:
//
//  1. read up to chunk rows of the day from the fallback, in key order
//     (organisation, id, time: an event id is unique only within its
//     organisation, so two organisations' events may share an id);
//  2. insert them into the store (ON CONFLICT DO NOTHING: rows already
//     there, from before the outage or from an earlier, interrupted
//     re-sync, are not duplicated) and commit;
//  3. verify: the count and an order-independent checksum of those keys'
//     rows (every column but ingested_at) must be equal in both stores;
//  4. delete exactly those keys from the fallback and commit.
//
// It can be killed at any point: a chunk copied but not deleted is copied
// again (a no-op) and then deleted; nothing is deleted before it is
// verified in the store. A chunk that fails verification stays in the
// fallback and the re-sync stops with an error.
func Resync(ctx context.Context, main, ts *pgxpool.Pool, chunk int, m *ResyncCounters) (ResyncResult, error) {
	var res ResyncResult
	for _, table := range Tables() {
		days, err := fallbackDays(ctx, main, table)
		if err != nil {
			return res, err
		}
		for _, day := range days {
			for {
				n, err := resyncChunk(ctx, main, ts, table, day, chunk, m)
				if err != nil {
					return res, fmt.Errorf("re-sync %s %s: %w", table, day.Format(time.DateOnly), err)
				}
				if n == 0 {
					break
				}
				res.Copied += int64(n)
				res.Chunks++
			}
		}
	}
	var left int64
	for _, table := range Tables() {
		var n int64
		if err := main.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM monitoring_fallback.%s`, pgx.Identifier{table}.Sanitize())).Scan(&n); err != nil {
			return res, fmt.Errorf("re-sync: count fallback rows: %w", err)
		}
		left += n
	}
	m.remaining.Set(float64(left))
	if left > 0 {
		return res, fmt.Errorf("re-sync: %d rows arrived in the fallback meanwhile; run again", left)
	}
	return res, nil
}

func fallbackDays(ctx context.Context, main *pgxpool.Pool, table string) ([]time.Time, error) {
	rows, err := main.Query(ctx, fmt.Sprintf(`SELECT DISTINCT date_trunc('day', datetime AT TIME ZONE 'UTC') FROM monitoring_fallback.%s ORDER BY 1`,
		pgx.Identifier{table}.Sanitize()))
	if err != nil {
		return nil, fmt.Errorf("re-sync: list fallback days of %s: %w", table, err)
	}
	days, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (time.Time, error) {
		var d time.Time
		err := r.Scan(&d)
		return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC), err
	})
	if err != nil {
		return nil, fmt.Errorf("re-sync: list fallback days of %s: %w", table, err)
	}
	return days, nil
}

// checksumSQL is the count and order-independent checksum of the rows of
// the given keys (organisation, id, time) in one day: the sum of 60-bit prefixes of each row's MD5
// (as canonical JSONB text, without ingested_at, in UTC).
const checksumSQL = `SELECT count(*), coalesce(sum(('x' || left(md5((to_jsonb(t) - 'ingested_at')::text), 15))::bit(60)::bigint), 0)::text
FROM %s t WHERE datetime >= $1 AND datetime < $2
  AND (organization_id, id, datetime) IN (SELECT * FROM unnest($3::bigint[], $4::uuid[], $5::timestamptz[]))`

func checksum(ctx context.Context, db *pgxpool.Pool, relation string, day time.Time, k chunkKeys) (int64, string, error) {
	var n int64
	var sum string
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('TimeZone', 'UTC', true)`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, fmt.Sprintf(checksumSQL, relation), day, day.AddDate(0, 0, 1), k.orgs, k.ids, k.times).Scan(&n, &sum)
	})
	return n, sum, err
}

// chunkKeys are the primary keys of one re-sync chunk's rows, as three
// parallel arrays.
type chunkKeys struct {
	orgs  []int64
	ids   []uuid.UUID
	times []time.Time
}

func resyncChunk(ctx context.Context, main, ts *pgxpool.Pool, table string, day time.Time, chunk int, m *ResyncCounters) (int, error) {
	fallback := "monitoring_fallback." + pgx.Identifier{table}.Sanitize()
	target := "monitoring." + pgx.Identifier{table}.Sanitize()
	next := day.AddDate(0, 0, 1)

	var k chunkKeys
	var payload []byte
	err := pgx.BeginFunc(ctx, main, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('TimeZone', 'UTC', true)`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(array_agg(c.organization_id), '{}'), coalesce(array_agg(c.id), '{}'),
			coalesce(array_agg(c.datetime), '{}'), coalesce(jsonb_agg(to_jsonb(c)), '[]')
			FROM (SELECT * FROM %s WHERE datetime >= $1 AND datetime < $2 ORDER BY organization_id, id, datetime LIMIT $3) c`, fallback),
			day, next, chunk).Scan(&k.orgs, &k.ids, &k.times, &payload)
	})
	if err != nil {
		return 0, fmt.Errorf("read fallback chunk: %w", err)
	}
	if len(k.ids) == 0 {
		return 0, nil
	}
	if _, err := ts.Exec(ctx, `SELECT monitoring.ensure_day_partitions('monitoring', ARRAY[$1::text], ARRAY[$2::date])`, table, day); err != nil {
		return 0, fmt.Errorf("ensure store partition: %w", err)
	}
	if _, err := ts.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT * FROM jsonb_populate_recordset(NULL::%s, $1::jsonb) ON CONFLICT DO NOTHING`, target, target), payload); err != nil {
		return 0, fmt.Errorf("copy chunk to store: %w", err)
	}
	wantN, wantSum, err := checksum(ctx, main, fallback, day, k)
	if err != nil {
		return 0, fmt.Errorf("checksum fallback chunk: %w", err)
	}
	gotN, gotSum, err := checksum(ctx, ts, target, day, k)
	if err != nil {
		return 0, fmt.Errorf("checksum store chunk: %w", err)
	}
	if gotN != wantN || gotSum != wantSum {
		m.mismatch.Inc()
		return 0, fmt.Errorf("verification failed: fallback %d rows (checksum %s), store %d rows (checksum %s); rows kept in fallback", wantN, wantSum, gotN, gotSum)
	}
	if _, err := main.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE datetime >= $1 AND datetime < $2
		AND (organization_id, id, datetime) IN (SELECT * FROM unnest($3::bigint[], $4::uuid[], $5::timestamptz[]))`, fallback),
		day, next, k.orgs, k.ids, k.times); err != nil {
		return 0, fmt.Errorf("delete verified chunk from fallback: %w", err)
	}
	m.copied.Add(float64(len(k.ids)))
	m.chunks.Inc()
	return len(k.ids), nil
}
