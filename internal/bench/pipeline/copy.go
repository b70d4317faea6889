package pipeline

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
)

// CopyResult is a raw CopyFrom measurement.
type CopyResult struct {
	// Rows is the number of rows written.
	Rows int64 `json:"rows"`
	// Elapsed is the wall time of the writes (rows prepared beforehand).
	Elapsed time.Duration `json:"elapsed_ns"`
	// Rate is rows per second.
	Rate float64 `json:"events_per_s"`
}

// copyTables are the event tables and columns CopyFrom writes: those the
// Agent API's ingest fills (ingested_at takes its default).
var copyTables = [3]struct {
	table string
	cols  []string
}{
	{"active_windows", []string{"id", "organization_id", "gateway_id", "seq", "agent_uid", "computer_uid", "user_sid", "window_title", "process_name", "url", "datetime", "duration_seconds"}},
	{"visited_sites", []string{"id", "organization_id", "gateway_id", "seq", "agent_uid", "computer_uid", "user_sid", "url", "title", "datetime", "duration_seconds"}},
	{"user_sessions", []string{"id", "organization_id", "gateway_id", "seq", "agent_uid", "computer_uid", "user_sid", "session_type", "datetime"}},
}

// copyBatch is one batch split by table, the rows made as the agents make
// them (agentsim.SampleEvents); ids and seq are filled per write.
type copyBatch [3][]protocol.Event

func tableOf(e protocol.Event) int {
	switch e.Type {
	case protocol.TypeActiveWindow:
		return 0
	case protocol.TypeVisitedSite:
		return 1
	default:
		return 2
	}
}

// eventRows is a pgx.CopyFromSource over one table's events with fresh ids
// and seqs.
type eventRows struct {
	table  int
	events []protocol.Event
	ids    []uuid.UUID
	seq    int64
	org    int64
	gw     uuid.UUID
	i      int
	row    []any
}

func (r *eventRows) Next() bool { r.i++; return r.i <= len(r.events) }
func (r *eventRows) Err() error { return nil }
func (r *eventRows) Values() ([]any, error) {
	e, k := r.events[r.i-1], r.i-1
	seq := r.seq + int64(k)
	// [16]byte, not uuid.UUID: pgx encodes the array natively, while
	// uuid.UUID goes through driver.Valuer and a text round trip.
	id, gw := [16]byte(r.ids[k]), [16]byte(r.gw)
	switch r.table {
	case 0:
		r.row = append(r.row[:0], id, r.org, gw, seq, e.AgentUID, e.ComputerName, e.UserSID, e.WindowTitle, e.ProcessName, nil, e.Datetime, int32(*e.DurationSeconds))
	case 1:
		r.row = append(r.row[:0], id, r.org, gw, seq, e.AgentUID, e.ComputerName, e.UserSID, e.URL, e.Title, e.Datetime, int32(*e.DurationSeconds))
	default:
		r.row = append(r.row[:0], id, r.org, gw, seq, e.AgentUID, e.ComputerName, e.UserSID, e.SessionType, e.Datetime)
	}
	return r.row, nil
}

// rawCopy writes rows rows for organisation org (gateway gw) into the
// event tables with pgx CopyFrom, in batches of batch events — one
// transaction per batch, one COPY per table, as the fastest way PostgreSQL
// takes rows — over workers connections to url. The rows are made as the
// agents make theirs and their ids (UUIDv7, as agents mint) are generated
// before the clock starts.
func rawCopy(ctx context.Context, url string, org int64, gw uuid.UUID, rows int64, batch, workers int) (CopyResult, error) {
	if rows <= 0 {
		return CopyResult{}, nil
	}
	const templates = 8
	tpl := make([]copyBatch, templates)
	for i := range tpl {
		for _, e := range agentsim.SampleEvents(uint64(i)+1, batch) {
			t := tableOf(e)
			tpl[i][t] = append(tpl[i][t], e)
		}
	}
	ids := make([]uuid.UUID, rows)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	conns := make([]*pgx.Conn, workers)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	for i := range conns {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			return CopyResult{}, fmt.Errorf("pipeline: copy: connect: %w", err)
		}
		conns[i] = c
	}
	nBatches := (rows + int64(batch) - 1) / int64(batch)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	start := time.Now()
	for w, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				b := next.Add(1) - 1
				if b >= nBatches {
					return
				}
				first := b * int64(batch)
				if err := copyOne(ctx, c, tpl[b%templates], ids[first:min(rows, first+int64(batch))], first+1, org, gw); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return CopyResult{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return CopyResult{}, err
	}
	return CopyResult{Rows: rows, Elapsed: elapsed, Rate: float64(rows) / elapsed.Seconds()}, nil
}

// copyOne writes one batch: len(ids) events taken from tpl in order.
func copyOne(ctx context.Context, c *pgx.Conn, tpl copyBatch, ids []uuid.UUID, seq, org int64, gw uuid.UUID) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pipeline: copy: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	left := ids
	for t, events := range tpl {
		// The template holds batch events and ids at most batch: a short
		// last batch takes the first tables' rows only.
		n := min(len(events), len(left))
		if n == 0 {
			continue
		}
		src := &eventRows{table: t, events: events[:n], ids: left[:n], seq: seq, org: org, gw: gw}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"monitoring", copyTables[t].table}, copyTables[t].cols, src); err != nil {
			return fmt.Errorf("pipeline: copy into %s: %w", copyTables[t].table, err)
		}
		left, seq = left[n:], seq+int64(n)
	}
	return tx.Commit(ctx)
}
