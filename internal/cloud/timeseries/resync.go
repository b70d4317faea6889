package timeseries

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries/timeseriesdb"
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
// time-series store and removes it from the fallback, one organisation, one
// table and day and one chunk at a time. The ingest role can neither read
// nor delete fallback rows, nor read the store, directly: each step runs in
// the organisation's signed context through the bounded SECURITY DEFINER
// functions of migration 00014, which act only in the verified
// organisation, and the store's insert passes its row-level security only
// for that organisation.
//
//  1. read up to chunk rows of the day from the fallback, in key order
//     (monitoring.fallback_chunk);
//  2. insert them into the store (ON CONFLICT DO NOTHING: rows already
//     there, from before the outage or from an earlier, interrupted
//     re-sync, are not duplicated) and commit;
//  3. verify: the count and an order-independent checksum of those keys'
//     rows (every column but ingested_at) must be equal in both stores
//     (monitoring.chunk_checksum);
//  4. delete exactly those keys from the fallback and commit
//     (monitoring.fallback_delete).
//
// It can be killed at any point: a chunk copied but not deleted is copied
// again (a no-op) and then deleted; nothing is deleted before it is
// verified in the store. A chunk that fails verification stays in the
// fallback and the re-sync stops with an error.
func Resync(ctx context.Context, main, ts *pgxpool.Pool, chunk int, m *ResyncCounters) (ResyncResult, error) {
	var res ResyncResult
	orgs, err := timeseriesdb.New(main).FallbackOrganizations(ctx)
	if err != nil {
		return res, fmt.Errorf("re-sync: list organisations in fallback: %w", err)
	}
	for _, org := range orgs {
		t := postgres.Tenant{OrganizationID: org, Actor: "re-sync"}
		for _, table := range Tables() {
			days, err := fallbackDays(ctx, main, t, table)
			if err != nil {
				return res, err
			}
			for _, day := range days {
				for {
					n, err := resyncChunk(ctx, main, ts, t, table, day, chunk, m)
					if err != nil {
						return res, fmt.Errorf("re-sync organisation %d %s %s: %w", org, table, day.Format(time.DateOnly), err)
					}
					if n == 0 {
						break
					}
					res.Copied += int64(n)
					res.Chunks++
				}
			}
		}
	}
	left, err := timeseriesdb.New(main).FallbackRows(ctx)
	if err != nil {
		return res, fmt.Errorf("re-sync: count fallback rows: %w", err)
	}
	m.remaining.Set(float64(left))
	if left > 0 {
		return res, fmt.Errorf("re-sync: %d rows arrived in the fallback meanwhile; run again", left)
	}
	return res, nil
}

func fallbackDays(ctx context.Context, main *pgxpool.Pool, t postgres.Tenant, table string) ([]time.Time, error) {
	var days []time.Time
	err := postgres.InTenant(ctx, main, t, func(tx pgx.Tx) error {
		ds, err := timeseriesdb.New(tx).FallbackDays(ctx, table)
		for _, d := range ds {
			days = append(days, time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC))
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("re-sync: list fallback days of %s: %w", table, err)
	}
	return days, nil
}

// checksum is the count and order-independent checksum of the rows of the
// given keys of t's organisation in schema.table: the sum of 60-bit
// prefixes of each row's MD5 (as canonical JSONB text, without
// ingested_at, in UTC); see monitoring.chunk_checksum.
func checksum(ctx context.Context, db *pgxpool.Pool, t postgres.Tenant, schema, table string, k chunkKeys) (int64, string, error) {
	var r timeseriesdb.ChunkChecksumRow
	err := postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		var err error
		r, err = timeseriesdb.New(tx).ChunkChecksum(ctx, timeseriesdb.ChunkChecksumParams{SchemaName: schema, TableName: table,
			Ids: k.ids, Datetimes: k.times})
		return err
	})
	return r.N, r.Checksum, err
}

// chunkKeys are the primary keys, within one organisation, of one re-sync
// chunk's rows, as two parallel arrays.
type chunkKeys struct {
	ids   []uuid.UUID
	times []time.Time
}

func resyncChunk(ctx context.Context, main, ts *pgxpool.Pool, t postgres.Tenant, table string, day time.Time, chunk int, m *ResyncCounters) (int, error) {
	var k chunkKeys
	var payload []byte
	err := postgres.InTenant(ctx, main, t, func(tx pgx.Tx) error {
		r, err := timeseriesdb.New(tx).FallbackChunk(ctx, timeseriesdb.FallbackChunkParams{TableName: table, Day: day, MaxRows: int32(chunk)})
		k.ids, k.times, payload = r.Ids, r.Datetimes, r.Payload
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read fallback chunk: %w", err)
	}
	if len(k.ids) == 0 {
		return 0, nil
	}
	if err := timeseriesdb.New(ts).EnsureStorePartition(ctx, timeseriesdb.EnsureStorePartitionParams{TableName: table, Day: day}); err != nil {
		return 0, fmt.Errorf("ensure store partition: %w", err)
	}
	// Through the bounded definer function (00020): the ingest role has no
	// INSERT on the series; it takes only the verified organisation's rows.
	if err := postgres.InTenant(ctx, ts, t, func(tx pgx.Tx) error {
		return timeseriesdb.New(tx).ResyncInsert(ctx, timeseriesdb.ResyncInsertParams{TableName: table, Payload: payload})
	}); err != nil {
		return 0, fmt.Errorf("copy chunk to store: %w", err)
	}
	wantN, wantSum, err := checksum(ctx, main, t, "monitoring_fallback", table, k)
	if err != nil {
		return 0, fmt.Errorf("checksum fallback chunk: %w", err)
	}
	gotN, gotSum, err := checksum(ctx, ts, t, "monitoring", table, k)
	if err != nil {
		return 0, fmt.Errorf("checksum store chunk: %w", err)
	}
	if gotN != wantN || gotSum != wantSum {
		m.mismatch.Inc()
		return 0, fmt.Errorf("verification failed: fallback %d rows (checksum %s), store %d rows (checksum %s); rows kept in fallback", wantN, wantSum, gotN, gotSum)
	}
	if err := postgres.InTenant(ctx, main, t, func(tx pgx.Tx) error {
		return timeseriesdb.New(tx).FallbackDelete(ctx, timeseriesdb.FallbackDeleteParams{TableName: table, Ids: k.ids, Datetimes: k.times})
	}); err != nil {
		return 0, fmt.Errorf("delete verified chunk from fallback: %w", err)
	}
	m.copied.Add(float64(len(k.ids)))
	m.chunks.Inc()
	return len(k.ids), nil
}
