package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// benchWorkers is the number of concurrent gateways.
const benchWorkers = 4

// runConcurrently runs b.N batches over benchWorkers goroutines and reports
// events/s, the p50/p99 latency of one batch and, with a meter, the CPU
// time per event of this process (client and server) and of PostgreSQL.
func runConcurrently(b *testing.B, perBatch int, meter *cpuMeter, send func(i int) error) {
	b.Helper()
	self0, pg0 := meter.read()
	var next atomic.Int64
	lat := make([][]time.Duration, benchWorkers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < benchWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := send(i); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	self1, pg1 := meter.read()
	if meter != nil {
		events := float64(b.N * perBatch)
		b.ReportMetric((self1-self0)*1e6/events, "proc-cpu-us/event")
		b.ReportMetric((pg1-pg0)*1e6/events, "pg-cpu-us/event")
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(b.N*perBatch)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkIngestVsCopyFrom measures, in one run and against one database,
// events/s through the Agent API (4 gateways, 1,000-event gzip batches, the
// full path: HTTP, gzip, JSON, validation, idempotency claim, unnest insert
// with per-event dedupe, answer stored) next to raw pgx CopyFrom of the same
// rows into the same tables. The ratio of the two events/s figures is the
// API's efficiency.
func BenchmarkIngestVsCopyFrom(b *testing.B) {
	const perBatch = 1000
	e := newEnv(b, ingest.DefaultLimits())
	meter := newCPUMeter(b, e.admin)
	// Pre-build bodies outside the timed region: a gateway has its batch
	// serialised before it sends.
	prepare := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			body, _ := json.Marshal(protocol.LogBatch{Events: makeEvents(perBatch, int64(i*perBatch+1))})
			out[i] = gz(body)
		}
		return out
	}
	b.Run("api", func(b *testing.B) {
		bodies := prepare(b.N)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchWorkers}}
		runConcurrently(b, perBatch, meter, func(i int) error {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+protocol.PathIngestLogs, bytesReader(bodies[i]))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Content-Encoding", "gzip")
			req.Header.Set(protocol.HeaderAPIKey, e.a.key)
			req.Header.Set(protocol.HeaderIdempotencyKey, uuid.NewString())
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return errStatus(resp.StatusCode)
			}
			return nil
		})
	})
	b.Run("copyfrom", func(b *testing.B) {
		batches := make([][]protocol.Event, b.N)
		for i := range batches {
			batches[i] = makeEvents(perBatch, int64(i*perBatch+1))
		}
		conns := make(chan *pgx.Conn, benchWorkers)
		for w := 0; w < benchWorkers; w++ {
			// As the owner: since migration 00020 the ingest role has no
			// INSERT on the series (it inserts through definer functions,
			// which COPY FROM cannot go through; the API path never used
			// COPY).
			c, err := pgx.Connect(context.Background(), e.ownerURL)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(context.Background())
			conns <- c
		}
		runConcurrently(b, perBatch, meter, func(i int) error {
			c := <-conns
			defer func() { conns <- c }()
			return copyBatch(context.Background(), c, e.a.org, e.a.id, batches[i])
		})
	})
}

// copyBatch writes events with CopyFrom, one COPY per table, in one
// transaction: the fastest way PostgreSQL takes rows.
func copyBatch(ctx context.Context, c *pgx.Conn, org int64, gw string, events []protocol.Event) error {
	// Ids as [16]byte: pgx encodes a uuid.UUID (a driver.Valuer) through
	// a failed direct encode first, an error built per value, which cost
	// the COPY side ~8× its client CPU (found by issue 17's e2e bench).
	gwID := [16]byte(uuid.MustParse(gw))
	var aw, vs, us [][]any
	for _, e := range events {
		id := [16]byte(uuid.MustParse(e.EventID))
		switch e.Type {
		case protocol.TypeActiveWindow:
			aw = append(aw, []any{id, org, gwID, e.Seq, e.AgentUID, e.ComputerName, e.UserSID, e.WindowTitle, e.ProcessName, nil, e.Datetime, int32(*e.DurationSeconds)})
		case protocol.TypeVisitedSite:
			vs = append(vs, []any{id, org, gwID, e.Seq, e.AgentUID, e.ComputerName, e.UserSID, e.URL, e.Title, e.Datetime, int32(*e.DurationSeconds)})
		default:
			us = append(us, []any{id, org, gwID, e.Seq, e.AgentUID, e.ComputerName, e.UserSID, e.SessionType, e.Datetime})
		}
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	for _, t := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"active_windows", []string{"id", "organization_id", "gateway_id", "seq", "agent_uid", "computer_uid", "user_sid", "window_title", "process_name", "url", "datetime", "duration_seconds"}, aw},
		{"visited_sites", []string{"id", "organization_id", "gateway_id", "seq", "agent_uid", "computer_uid", "user_sid", "url", "title", "datetime", "duration_seconds"}, vs},
		{"user_sessions", []string{"id", "organization_id", "gateway_id", "seq", "agent_uid", "computer_uid", "user_sid", "session_type", "datetime"}, us},
	} {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"monitoring", t.table}, t.cols, pgx.CopyFromRows(t.rows)); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

type errStatus int

func (e errStatus) Error() string { return fmt.Sprintf("status %d", int(e)) }
