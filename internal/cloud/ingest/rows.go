package ingest

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest/ingestdb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// The time-series tables, by event type.
var tableOf = map[string]string{
	protocol.TypeActiveWindow: "active_windows",
	protocol.TypeVisitedSite:  "visited_sites",
	protocol.TypeUserSession:  "user_sessions",
	protocol.TypeScreenshot:   "screenshots",
	typeDeviceEvent:           "device_events",
}

// typeDeviceEvent is the metric label of device events.
const typeDeviceEvent = "device_event"

// row is one event of a batch as the write sees it.
type row struct {
	index int    // position in the batch: events[index]
	typ   string // event type (metric label)
	table string // the time-series table it goes to
	id    string
	seq   int64
	at    time.Time
}

// written is what a write stored.
type written struct {
	// accepted and duplicates count the events newly stored and those
	// already stored, by type.
	accepted, duplicates map[string]int
	// inserted holds the ids of the screenshot events newly stored: what
	// decides which of the request's files are kept. The other series have
	// no files and are not listed (a map entry per event was measurable
	// work on the hot path, read by nothing).
	inserted map[string]bool
	// resent are the sequence numbers of duplicates whose stored copy has
	// another sequence number: a re-send the gateway numbered anew.
	resent []int64
	// carried counts events an earlier attempt under the same key stored in
	// the separate time-series store without its accounting reaching the
	// main database: duplicates now, yet still to be accounted (and
	// answered) as accepted.
	carried int
}

func newWritten() written {
	return written{accepted: map[string]int{}, duplicates: map[string]int{}, inserted: map[string]bool{}}
}

// tablesAndDays are the tables a batch writes and the UTC days its events
// fall on: the partitions it needs.
func (p *prepared) tablesAndDays() ([]string, []time.Time) {
	ts, ds := map[string]bool{}, map[time.Time]bool{}
	var tables []string
	var days []time.Time
	for _, r := range p.rows {
		if !ts[r.table] {
			ts[r.table] = true
			tables = append(tables, r.table)
		}
		if d := timeseries.DayOf(r.at); !ds[d] {
			ds[d] = true
			days = append(days, d)
		}
	}
	return tables, days
}

// insertRows runs one insert of rs (the series' definer function, which
// returns the rows it inserted) and counts what was new and what was a
// duplicate. Only when the insert skipped rows (duplicates, rare) does
// it look up the stored copies of the batch's events, in the transaction's
// organisation: a duplicate stored under another sequence number is a
// re-send the gateway numbered anew. The common case costs the insert alone.
//
// With files (the screenshots' insert: files[i] is the file rs[i]
// references), the ids stored now are known exactly even when rows were
// skipped: a stored row referencing this upload's file is this insert's, so
// that a duplicate's freshly written file is removed at once. (Not RETURNING
// id, which would need SELECT on the series: issue 12.)
func (s *Service) insertRows(ctx context.Context, tx pgx.Tx, schema, sql string, args []any, rs []row, w *written, files []string) error {
	if len(rs) == 0 {
		return nil
	}
	typ, table := rs[0].typ, rs[0].table
	var n int
	if err := tx.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return fmt.Errorf("insert %s: %w", typ, err)
	}
	w.accepted[typ] += n
	w.duplicates[typ] += len(rs) - n
	if n == len(rs) {
		if files != nil {
			for _, r := range rs {
				w.inserted[r.id] = true
			}
		}
		return nil
	}
	ids, times := make([]string, len(rs)), make([]time.Time, len(rs))
	for i, r := range rs {
		ids[i], times[i] = r.id, r.at
	}
	type stored struct {
		seq  int64
		file string
	}
	found := map[string]stored{}
	q := ingestdb.New(tx)
	if files != nil {
		rows, err := q.StoredScreenshots(ctx, ingestdb.StoredScreenshotsParams{SchemaName: schema, Ids: ids, Datetimes: times})
		if err != nil {
			return fmt.Errorf("look up stored %s: %w", typ, err)
		}
		for _, r := range rows {
			found[r.ID] = stored{r.Seq, r.FilePath}
		}
	} else {
		rows, err := q.StoredEventSeqs(ctx, ingestdb.StoredEventSeqsParams{SchemaName: schema, TableName: table, Ids: ids, Datetimes: times})
		if err != nil {
			return fmt.Errorf("look up stored %s seqs: %w", typ, err)
		}
		for _, r := range rows {
			found[r.ID] = stored{seq: r.Seq}
		}
	}
	for i, r := range rs {
		st, ok := found[r.id]
		switch {
		case !ok:
		case files != nil && st.file == files[i]:
			// This insert's row. A second copy of the id in the same batch
			// (same upload, same file) is a duplicate.
			delete(found, r.id)
			w.inserted[r.id] = true
		case st.seq != r.seq:
			w.resent = append(w.resent, r.seq)
		case files != nil:
			// A duplicate stored before under this sequence number (a retry).
		default:
			// Stored under this very sequence number: this request's row, or
			// a retry's (the log and device series cannot tell, and need not:
			// only screenshot files depend on inserted).
		}
	}
	return nil
}

// positions returns the batch positions 0 to n-1.
func positions(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// inEventIDOrder sorts idx (positions of noted events) by event id and
// returns it. Every series is inserted in event-id order: concurrent
// batches that share events (a gateway's retry racing a re-formed batch)
// then take their row locks in the same order and cannot deadlock on ON
// CONFLICT.
func (p *prepared) inEventIDOrder(idx []int) []int {
	sort.Slice(idx, func(i, j int) bool { return p.rows[idx[i]].id < p.rows[idx[j]].id })
	return idx
}

// series is one table's share of a batch of events E: the positions of its
// events in insert order, the insert, and the columns of the events after
// the organisation and gateway (with the storage paths of their files, nil
// when they have none).
type series[E any] struct {
	idx     []int
	sql     string
	columns func(es []*E, rs []row) (args []any, files []string)
}

// noFiles adapts the columns of a series without files.
func noFiles[E any](columns func([]*E) []any) func([]*E, []row) ([]any, []string) {
	return func(es []*E, _ []row) ([]any, []string) { return columns(es), nil }
}

// insertSeries inserts, series by series, the events that keep allows (all
// when keep is nil) of gw's batch of events (rows are their noted rows) and
// returns what was written, up to the first failure.
func insertSeries[E any](ctx context.Context, s *Service, tx pgx.Tx, schema string, gw auth.Gateway, events []E, rows []row,
	keep func(int) bool, all ...series[E]) (written, error) {
	w := newWritten()
	for _, g := range all {
		es, rs := subset(g.idx, events, rows, keep)
		if len(es) == 0 {
			continue
		}
		columns, files := g.columns(es, rs)
		if err := s.insertRows(ctx, tx, schema, g.sql, append([]any{gw.OrganizationID, [16]byte(gw.ID)}, columns...), rs, &w, files); err != nil {
			return w, err
		}
	}
	return w, nil
}

// subset returns the rows of idx (batch positions) that keep allows (all
// when keep is nil), with their events.
func subset[E any](idx []int, events []E, rows []row, keep func(int) bool) ([]*E, []row) {
	var es []*E
	var rs []row
	for _, i := range idx {
		if keep != nil && !keep(i) {
			continue
		}
		es = append(es, &events[i])
		rs = append(rs, rows[i])
	}
	return es, rs
}
