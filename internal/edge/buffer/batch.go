package buffer

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// StoredEvent is one buffered event as the uplink sends it.
type StoredEvent struct {
	EventID string
	Seq     int64
	// Payload is the event's JSON without seq.
	Payload   []byte
	Size      int64
	FileSize  int64
	CreatedAt time.Time
}

// Batch is a set of rows claimed for one upload, under one idempotency token
// that is committed with the claim.
type Batch struct {
	Token  string
	Stream Stream
	// FirstID and LastID bound the row ids of the batch's rows.
	FirstID   int64
	LastID    int64
	Events    []StoredEvent
	Drops     []protocol.Drop
	Bytes     int64
	Attempts  int
	CreatedAt time.Time
}

func scanEvents(rows *sql.Rows) ([]StoredEvent, []int64, error) {
	defer rows.Close()
	var out []StoredEvent
	var ids []int64
	for rows.Next() {
		var e StoredEvent
		var id, created int64
		if err := rows.Scan(&id, &e.EventID, &e.Seq, &e.Payload, &e.Size, &e.FileSize, &created); err != nil {
			return nil, nil, err
		}
		e.CreatedAt = time.UnixMilli(created)
		out = append(out, e)
		ids = append(ids, id)
	}
	return out, ids, rows.Err()
}

// PendingBatch returns the oldest batch of stream that was claimed but not
// acknowledged (e.g. before a crash) and whose token is not in skip, with
// its rows, or nil.
func (b *Buffer) PendingBatch(ctx context.Context, s Stream, skip map[string]bool) (*Batch, error) {
	rows, err := b.db.QueryContext(ctx, b.q["select_pending_batch"], string(s))
	if err != nil {
		return nil, fmt.Errorf("buffer: read pending %s batches: %w", s, err)
	}
	var bt *Batch
	var drops string
	for rows.Next() {
		var c Batch
		var created int64
		var d string
		if err := rows.Scan(&c.Token, &c.FirstID, &c.LastID, &c.Bytes, &d, &c.Attempts, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("buffer: read pending %s batches: %w", s, err)
		}
		if skip[c.Token] {
			continue
		}
		c.Stream = s
		c.CreatedAt = time.UnixMilli(created)
		bt, drops = &c, d
		break
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("buffer: read pending %s batches: %w", s, err)
	}
	if bt == nil {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(drops), &bt.Drops); err != nil {
		return nil, fmt.Errorf("buffer: decode drops of batch %s: %w", bt.Token, err)
	}
	evRows, err := b.db.QueryContext(ctx, b.q["select_batch_rows_"+s.table()], bt.FirstID, bt.LastID, bt.Token)
	if err != nil {
		return nil, fmt.Errorf("buffer: read rows of batch %s: %w", bt.Token, err)
	}
	bt.Events, _, err = scanEvents(evRows)
	if err != nil {
		return nil, fmt.Errorf("buffer: read rows of batch %s: %w", bt.Token, err)
	}
	return bt, nil
}

// Claim forms a new batch of stream from the oldest unclaimed rows, bounded
// by maxEvents and maxBytes (at least one event), and, when withDrops, moves
// the pending drop report into it. It returns nil when there is nothing to
// send.
//
// The claim is committed in chunks of at most chunkRows() rows: the
// first transaction records the batch (token, drop report, first rows), each
// further one claims the next rows and extends the batch record. Every
// commit leaves a consistent batch, and none has been sent before Claim
// returns, so a crash between chunks only makes the pending batch smaller.
// Appends from agents are committed between chunks.
func (b *Buffer) Claim(ctx context.Context, s Stream, maxEvents int, maxBytes int64, withDrops bool) (*Batch, error) {
	if maxEvents < 1 {
		maxEvents = 1
	}
	bt := &Batch{Token: newToken(), Stream: s, CreatedAt: b.now()}
	n := 0
	recorded := false
	for n < maxEvents {
		limit := min(maxEvents-n, b.chunkRows())
		got, full := 0, false
		var next chunkResult
		// Each chunk reads its rows (payloads included) in the transaction
		// that claims them: one pass, at most WriteChunkRows rows.
		err := b.withTx(ctx, func(tx *sql.Tx) error {
			got, full, next = 0, false, chunkResult{}
			rows, err := tx.QueryContext(ctx, b.q["select_unclaimed_"+s.table()], s.class(), limit)
			if err != nil {
				return fmt.Errorf("select rows: %w", err)
			}
			var first, last, total int64
			var events []StoredEvent
			for rows.Next() {
				var e StoredEvent
				var id, created int64
				if err := rows.Scan(&id, &e.EventID, &e.Seq, &e.Payload, &e.Size, &e.FileSize, &created); err != nil {
					rows.Close()
					return fmt.Errorf("select rows: %w", err)
				}
				if n+got > 0 && bt.Bytes+total+e.Size > maxBytes {
					full = true
					break
				}
				e.CreatedAt = time.UnixMilli(created)
				if got == 0 {
					first = id
				}
				last = id
				total += e.Size
				events = append(events, e)
				got++
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("select rows: %w", err)
			}
			var drops []protocol.Drop
			if !recorded && withDrops {
				if drops, err = pendingDrops(ctx, tx, b.q["select_pending_drops"]); err != nil {
					return err
				}
				if len(drops) > 0 {
					if _, err := tx.ExecContext(ctx, b.q["clear_pending_drops"]); err != nil {
						return fmt.Errorf("clear pending drops: %w", err)
					}
				}
			}
			if got == 0 && (recorded || len(drops) == 0) {
				return nil
			}
			firstID, lastID := bt.FirstID, last
			if !recorded {
				firstID = first
				if got == 0 {
					lastID = 0
				}
				if _, err := tx.ExecContext(ctx, b.q["insert_batch"], bt.Token, string(s), got, firstID, lastID,
					total, encodeDrops(drops), bt.CreatedAt.UnixMilli()); err != nil {
					return fmt.Errorf("insert batch: %w", err)
				}
			} else if _, err := tx.ExecContext(ctx, b.q["update_batch_extent"], n+got, lastID, bt.Bytes+total, bt.Token); err != nil {
				return fmt.Errorf("extend batch: %w", err)
			}
			if got > 0 {
				if _, err := tx.ExecContext(ctx, b.q["claim_"+s.table()], bt.Token, s.class(), first, last); err != nil {
					return fmt.Errorf("claim rows: %w", err)
				}
			}
			next = chunkResult{firstID: firstID, lastID: lastID, bytes: total, drops: drops, events: events, ok: true}
			return nil
		})
		if err == nil && next.ok {
			// Committed: only now does the batch change in memory.
			bt.FirstID, bt.LastID = next.firstID, next.lastID
			bt.Bytes += next.bytes
			bt.Events = append(bt.Events, next.events...)
			if !recorded {
				bt.Drops = next.drops
			}
			recorded = true
		}
		if err != nil {
			if recorded {
				// Earlier chunks are committed: the batch stays pending and
				// is sent (as it is) by PendingBatch.
				b.addClaimed(s, n, bt.Bytes)
			}
			return nil, fmt.Errorf("buffer: claim %s batch: %w", s, err)
		}
		n += got
		if got < limit || full {
			break
		}
	}
	if !recorded {
		return nil, nil
	}
	b.addClaimed(s, n, bt.Bytes)
	return bt, nil
}

// chunkResult is what one committed claim chunk adds to its batch.
type chunkResult struct {
	firstID, lastID, bytes int64
	drops                  []protocol.Drop
	events                 []StoredEvent
	ok                     bool
}

func (b *Buffer) addClaimed(s Stream, rows int, bytes int64) {
	b.mu.Lock()
	c := b.counters[s.class()]
	c.claimedRows += int64(rows)
	c.claimedBytes += bytes
	b.mu.Unlock()
}

func pendingDrops(ctx context.Context, tx *sql.Tx, query string) ([]protocol.Drop, error) {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("select pending drops: %w", err)
	}
	defer rows.Close()
	var out []protocol.Drop
	for rows.Next() {
		var d protocol.Drop
		var first, last int64
		if err := rows.Scan(&d.Reason, &d.Class, &d.Count, &first, &last); err != nil {
			return nil, fmt.Errorf("select pending drops: %w", err)
		}
		d.FirstAt = time.UnixMilli(first).UTC()
		d.LastAt = time.UnixMilli(last).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}

// Ack deletes a batch and its rows after the cloud answered 2xx, then
// removes screenshot files of its events.
//
// The batch record goes first, with the first chunk of rows; the remaining
// rows follow in chunks of at most chunkRows(). Rows whose token has no
// batch record are therefore acknowledged rows: if a crash interrupts the
// chunks, Open deletes them (they are never sent again).
func (b *Buffer) Ack(ctx context.Context, bt *Batch) error {
	found := false
	del := b.q["delete_batch_rows_chunk_"+bt.Stream.table()]
	chunk := b.chunkRows()
	deleted := 0
	err := b.withTx(ctx, func(tx *sql.Tx) error {
		var err error
		if found, err = deleteBatch(ctx, tx, b.q["delete_batch"], bt.Token); err != nil || !found {
			return err
		}
		res, err := tx.ExecContext(ctx, del, bt.FirstID, bt.LastID, bt.Token, chunk)
		if err != nil {
			return fmt.Errorf("delete rows: %w", err)
		}
		n, err := res.RowsAffected()
		deleted = int(n)
		return err
	})
	if err != nil {
		return fmt.Errorf("buffer: ack batch %s: %w", bt.Token, err)
	}
	if !found {
		return nil
	}
	for deleted == chunk {
		err := b.withTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, del, bt.FirstID, bt.LastID, bt.Token, chunk)
			if err != nil {
				return fmt.Errorf("delete rows: %w", err)
			}
			n, err := res.RowsAffected()
			deleted = int(n)
			return err
		})
		if err != nil {
			// The batch is acknowledged (its record is gone); the rows left
			// are removed at the next Open. Until then they count as in
			// flight.
			return fmt.Errorf("buffer: ack batch %s: %w", bt.Token, err)
		}
	}
	b.forget(bt, true)
	return nil
}

// deleteBatch deletes a batch record and reports whether it still existed
// (shedding may have dropped it while it was in flight).
func deleteBatch(ctx context.Context, tx *sql.Tx, query, token string) (bool, error) {
	res, err := tx.ExecContext(ctx, query, token)
	if err != nil {
		return false, fmt.Errorf("delete batch: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete batch: %w", err)
	}
	return n > 0, nil
}

// forget updates counters after a batch's rows were deleted (deleted) or
// released, and removes screenshot files of deleted rows.
func (b *Buffer) forget(bt *Batch, deleted bool) {
	b.mu.Lock()
	c := b.counters[bt.Stream.class()]
	c.claimedRows -= int64(len(bt.Events))
	c.claimedBytes -= bt.Bytes
	if deleted {
		c.rows -= int64(len(bt.Events))
		c.bytes -= bt.Bytes
	}
	b.mu.Unlock()
	if deleted && bt.Stream == StreamScreenshots {
		for _, e := range bt.Events {
			_ = os.Remove(b.ScreenshotPath(e.EventID))
		}
	}
	if deleted {
		b.evaluate()
	} else {
		b.signal(bt.Stream)
	}
}

// Release gives a batch's rows back for re-batching under a new token (after
// 413 or 422) and returns its drop report to the pending report.
func (b *Buffer) Release(ctx context.Context, bt *Batch) error {
	found := false
	err := b.withTx(ctx, func(tx *sql.Tx) error {
		var err error
		if found, err = deleteBatch(ctx, tx, b.q["delete_batch"], bt.Token); err != nil || !found {
			return err
		}
		if _, err := tx.ExecContext(ctx, b.q["release_"+bt.Stream.table()], bt.FirstID, bt.LastID, bt.Token); err != nil {
			return fmt.Errorf("release rows: %w", err)
		}
		return b.restoreDrops(ctx, tx, bt.Drops)
	})
	if err != nil {
		return fmt.Errorf("buffer: release batch %s: %w", bt.Token, err)
	}
	if found {
		b.forget(bt, false)
	}
	return nil
}

func (b *Buffer) restoreDrops(ctx context.Context, tx *sql.Tx, drops []protocol.Drop) error {
	for _, d := range drops {
		if _, err := tx.ExecContext(ctx, b.q["add_drops"], d.Reason, d.Class, d.Count, 0,
			d.FirstAt.UnixMilli(), d.LastAt.UnixMilli()); err != nil {
			return fmt.Errorf("restore drops: %w", err)
		}
	}
	return nil
}

// RecordFailure counts a failed attempt on the batch and its rows.
func (b *Buffer) RecordFailure(ctx context.Context, bt *Batch, cause string) error {
	if len(cause) > 500 {
		cause = cause[:500]
	}
	err := b.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, b.q["batch_failed"], cause, bt.Token); err != nil {
			return fmt.Errorf("count attempt: %w", err)
		}
		if _, err := tx.ExecContext(ctx, b.q["retry_"+bt.Stream.table()], bt.FirstID, bt.LastID, bt.Token); err != nil {
			return fmt.Errorf("count row retries: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("buffer: record failure of batch %s: %w", bt.Token, err)
	}
	bt.Attempts++
	return nil
}

// Reject drops a batch's rows that the cloud refused permanently, counting
// them under reason, and returns the batch's drop report to pending.
func (b *Buffer) Reject(ctx context.Context, bt *Batch, reason string) error {
	now := b.now().UnixMilli()
	class := bt.Stream.class()
	found := false
	err := b.withTx(ctx, func(tx *sql.Tx) error {
		var err error
		if found, err = deleteBatch(ctx, tx, b.q["delete_batch"], bt.Token); err != nil || !found {
			return err
		}
		if _, err := tx.ExecContext(ctx, b.q["delete_batch_rows_"+bt.Stream.table()], bt.FirstID, bt.LastID, bt.Token); err != nil {
			return fmt.Errorf("delete rows: %w", err)
		}
		if len(bt.Events) > 0 {
			if _, err := tx.ExecContext(ctx, b.q["add_drops"], reason, class, len(bt.Events), len(bt.Events), now, now); err != nil {
				return fmt.Errorf("count drops: %w", err)
			}
		}
		return b.restoreDrops(ctx, tx, bt.Drops)
	})
	if err != nil {
		return fmt.Errorf("buffer: reject batch %s: %w", bt.Token, err)
	}
	if !found {
		return nil
	}
	if len(bt.Events) > 0 {
		b.m.dropped.WithLabelValues(reason, class).Add(float64(len(bt.Events)))
		b.log.Error("events dropped", "reason", reason, "class", class, "count", len(bt.Events), "batch", bt.Token)
	}
	b.forget(bt, true)
	return nil
}

// Unclaimed returns the number and accounted bytes of rows of stream not yet
// in a batch.
func (b *Buffer) Unclaimed(s Stream) (rows, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.counters[s.class()]
	return c.rows - c.claimedRows, c.bytes - c.claimedBytes
}

// HasPendingDrops reports whether a drop report waits to be sent.
func (b *Buffer) HasPendingDrops(ctx context.Context) (bool, error) {
	var n int64
	err := b.db.QueryRowContext(ctx, "SELECT count(*) FROM drop_counters WHERE pending > 0").Scan(&n)
	if err != nil {
		return false, fmt.Errorf("buffer: count pending drops: %w", err)
	}
	return n > 0, nil
}

// OldestUnclaimed returns the creation time of the oldest row of stream not
// yet in a batch.
func (b *Buffer) OldestUnclaimed(ctx context.Context, s Stream) (time.Time, bool, error) {
	var ms int64
	err := b.db.QueryRowContext(ctx, b.q["oldest_unclaimed_"+s.table()], s.class()).Scan(&ms)
	if err == sql.ErrNoRows {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("buffer: oldest unclaimed %s: %w", s, err)
	}
	return time.UnixMilli(ms), true, nil
}

// OldestUnsent returns the creation time of the oldest buffered row.
func (b *Buffer) OldestUnsent(ctx context.Context) (time.Time, bool, error) {
	var oldest time.Time
	found := false
	for _, name := range []string{"oldest_agent", "oldest_device"} {
		var ms int64
		err := b.db.QueryRowContext(ctx, b.q[name]).Scan(&ms)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return time.Time{}, false, fmt.Errorf("buffer: %s: %w", name, err)
		}
		t := time.UnixMilli(ms)
		if !found || t.Before(oldest) {
			oldest, found = t, true
		}
	}
	return oldest, found, nil
}

// HasEvent reports whether an agent event with this id is buffered.
func (b *Buffer) HasEvent(ctx context.Context, eventID string) (bool, error) {
	var one int
	err := b.db.QueryRowContext(ctx, b.q["event_exists"], eventID).Scan(&one)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("buffer: look up event %s: %w", eventID, err)
	}
	return true, nil
}
