package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	// inserted holds the ids of the events newly stored.
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

// insertRows runs one unnest insert of rs (RETURNING the ids it stored),
// counts what was new and what was a duplicate, and for the duplicates
// looks up the stored sequence numbers (monitoring.stored_event_seqs, in
// the transaction's organisation) to find re-sends numbered anew.
func (s *Service) insertRows(ctx context.Context, tx pgx.Tx, schema, sql string, args []any, rs []row, w *written) error {
	if len(rs) == 0 {
		return nil
	}
	typ, table := rs[0].typ, rs[0].table
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("insert %s: %w", typ, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("insert %s: %w", typ, err)
	}
	fresh := make(map[string]bool, len(ids))
	for _, id := range ids {
		fresh[id], w.inserted[id] = true, true
	}
	var dups []row
	for _, r := range rs {
		if fresh[r.id] {
			delete(fresh, r.id) // a second copy in the same batch is a duplicate
			continue
		}
		dups = append(dups, r)
	}
	w.accepted[typ] += len(rs) - len(dups)
	w.duplicates[typ] += len(dups)
	if len(dups) == 0 {
		return nil
	}
	dupIDs, dupTimes := make([]string, len(dups)), make([]time.Time, len(dups))
	for i, r := range dups {
		dupIDs[i], dupTimes[i] = r.id, r.at
	}
	rows, err = tx.Query(ctx, s.q.storedEventSeqs, schema, table, dupIDs, dupTimes)
	if err != nil {
		return fmt.Errorf("look up stored %s seqs: %w", typ, err)
	}
	stored := map[string]int64{}
	var id string
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &seq}, func() error { stored[id] = seq; return nil }); err != nil {
		return fmt.Errorf("look up stored %s seqs: %w", typ, err)
	}
	for _, r := range dups {
		if st, ok := stored[r.id]; ok && st != r.seq {
			w.resent = append(w.resent, r.seq)
		}
	}
	return nil
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
