package buffer

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// StoredEvent is one buffered event as the uplink sends it.
type StoredEvent struct {
	// RowID is the row's id in its buffer table.
	RowID   int64
	EventID string
	Seq     int64
	// Payload is the event's JSON without seq.
	Payload   []byte
	Size      int64
	FileSize  int64
	CreatedAt time.Time
}

// Batch is a set of rows claimed for one upload, under one idempotency token
// that is committed with the claim: the rows of the stream's class whose ids
// lie in [FirstID, LastID].
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

// scanEvent reads the current row of a query selecting a stored event
// (unclaimed_rows, batch_rows).
func scanEvent(rows *sql.Rows) (StoredEvent, error) {
	var e StoredEvent
	var created int64
	if err := rows.Scan(&e.RowID, &e.EventID, &e.Seq, &e.Payload, &e.Size, &e.FileSize, &created); err != nil {
		return StoredEvent{}, err
	}
	e.CreatedAt = time.UnixMilli(created)
	return e, nil
}

func scanEvents(rows *sql.Rows) ([]StoredEvent, error) {
	defer rows.Close()
	var out []StoredEvent
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PendingBatch returns the oldest batch of stream that was claimed but not
// acknowledged (e.g. before a crash) and whose token is not in skip, with
// its rows, or nil.
func (b *Buffer) PendingBatch(ctx context.Context, s Stream, skip map[string]bool) (*Batch, error) {
	pending, err := b.qs.SelectPendingBatches(ctx, string(s))
	if err != nil {
		return nil, fmt.Errorf("buffer: read pending %s batches: %w", s, err)
	}
	var bt *Batch
	var drops string
	for _, p := range pending {
		if skip[p.Token] {
			continue
		}
		bt = &Batch{Token: p.Token, Stream: s, FirstID: p.FirstID, LastID: p.LastID, Bytes: p.Bytes,
			Attempts: int(p.Attempts), CreatedAt: time.UnixMilli(p.CreatedAt)}
		drops = p.Drops
		break
	}
	if bt == nil {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(drops), &bt.Drops); err != nil {
		return nil, fmt.Errorf("buffer: decode drops of batch %s: %w", bt.Token, err)
	}
	evRows, err := b.stmt(b.sq("batch_rows", s)).QueryContext(ctx, bt.FirstID, bt.LastID)
	if err != nil {
		return nil, fmt.Errorf("buffer: read rows of batch %s: %w", bt.Token, err)
	}
	bt.Events, err = scanEvents(evRows)
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
// The rows are read in chunks of at most chunkRows() rows, each a short
// read on the writer goroutine (appends from agents are committed between
// them); then one small transaction records the batch (token, id range,
// drop report) and moves the stream's claim cursor past it. The rows
// themselves are not written, and nothing is claimed if the process dies
// before that commit.
func (b *Buffer) Claim(ctx context.Context, s Stream, maxEvents int, maxBytes int64, withDrops bool) (*Batch, error) {
	if maxEvents < 1 {
		maxEvents = 1
	}
	mu := b.claimMu[s]
	mu.Lock()
	defer mu.Unlock()
	bt := &Batch{Token: newToken(), Stream: s, CreatedAt: b.now()}
	after := b.cursor[s].Load()
	for full := false; len(bt.Events) < maxEvents && !full; {
		limit := min(maxEvents-len(bt.Events), b.chunkRows())
		var chunk []StoredEvent
		var chunkBytes int64
		err := b.withTx(ctx, func(tx *sql.Tx) error {
			chunk, chunkBytes, full = nil, 0, false
			rows, err := b.txStmts(tx).QueryContext(ctx, b.sq("unclaimed_rows", s), after, limit)
			if err != nil {
				return fmt.Errorf("select rows: %w", err)
			}
			defer rows.Close()
			for rows.Next() {
				e, err := scanEvent(rows)
				if err != nil {
					return fmt.Errorf("select rows: %w", err)
				}
				if len(bt.Events)+len(chunk) > 0 && bt.Bytes+chunkBytes+e.Size > maxBytes {
					full = true
					break
				}
				chunk = append(chunk, e)
				chunkBytes += e.Size
			}
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("buffer: claim %s batch: %w", s, err)
		}
		bt.Events = append(bt.Events, chunk...)
		bt.Bytes += chunkBytes
		if len(chunk) < limit {
			break
		}
		after = chunk[len(chunk)-1].RowID
	}
	if n := len(bt.Events); n > 0 {
		bt.FirstID, bt.LastID = bt.Events[0].RowID, bt.Events[n-1].RowID
	}
	recorded := false
	err := b.withTx(ctx, func(tx *sql.Tx) error {
		recorded = false
		q := b.onTx(tx)
		var drops []protocol.Drop
		if withDrops {
			var err error
			if drops, err = pendingDrops(ctx, q); err != nil {
				return err
			}
			if len(drops) > 0 {
				if err := q.ClearPendingDrops(ctx); err != nil {
					return fmt.Errorf("clear pending drops: %w", err)
				}
			}
		}
		if len(bt.Events) == 0 && len(drops) == 0 {
			return nil
		}
		if err := q.InsertBatch(ctx, bufferdb.InsertBatchParams{Token: bt.Token, Stream: string(s),
			EventCount: int64(len(bt.Events)), FirstID: bt.FirstID, LastID: bt.LastID, Bytes: bt.Bytes,
			Drops: encodeDrops(drops), CreatedAt: bt.CreatedAt.UnixMilli()}); err != nil {
			return fmt.Errorf("insert batch: %w", err)
		}
		if len(bt.Events) > 0 {
			if err := q.SetState(ctx, bufferdb.SetStateParams{Key: s.cursorKey(), Value: strconv.FormatInt(bt.LastID, 10)}); err != nil {
				return fmt.Errorf("move claim cursor: %w", err)
			}
		}
		bt.Drops = drops
		recorded = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("buffer: claim %s batch: %w", s, err)
	}
	if !recorded {
		return nil, nil
	}
	if len(bt.Events) > 0 {
		b.cursor[s].Store(bt.LastID)
	}
	b.addClaimed(s, len(bt.Events), bt.Bytes)
	return bt, nil
}

func (b *Buffer) addClaimed(s Stream, rows int, bytes int64) {
	b.mu.Lock()
	c := b.counters[s.class()]
	c.claimedRows += int64(rows)
	c.claimedBytes += bytes
	b.mu.Unlock()
}

func pendingDrops(ctx context.Context, q *bufferdb.Queries) ([]protocol.Drop, error) {
	rows, err := q.SelectPendingDrops(ctx)
	if err != nil {
		return nil, fmt.Errorf("select pending drops: %w", err)
	}
	var out []protocol.Drop
	for _, r := range rows {
		out = append(out, protocol.Drop{Reason: r.Reason, Class: r.Class, Count: r.Pending,
			FirstAt: time.UnixMilli(r.FirstAt).UTC(), LastAt: time.UnixMilli(r.LastAt).UTC()})
	}
	return out, nil
}

// Ack deletes a batch and its rows after the cloud answered 2xx, then
// removes screenshot files of its events.
//
// The batch record goes first, with the first chunk of rows; the remaining
// rows follow in chunks of at most chunkRows(). Claimed rows (at or below
// the stream's cursor) outside every batch's range are therefore
// acknowledged rows: if a crash interrupts the chunks, Open deletes them
// (they are never sent again).
//
// Ack's transactions commit without an fsync of their own (see
// withLazyTx): a power cut can only undo them, and then the batch is resent
// under its token. Except the first one of a screenshot batch: the image
// files are removed right after, so the batch must not come back after a
// power cut (it would be resent without its images).
func (b *Buffer) Ack(ctx context.Context, bt *Batch) error {
	found := false
	del := b.sq("delete_rows_chunk", bt.Stream)
	chunk := b.chunkRows()
	deleted := 0
	first := b.withLazyTx
	if bt.Stream == StreamScreenshots {
		first = b.withTx
	}
	err := first(ctx, func(tx *sql.Tx) error {
		var err error
		if found, err = deleteBatch(ctx, b.onTx(tx), bt.Token); err != nil || !found {
			return err
		}
		res, err := b.txStmts(tx).ExecContext(ctx, del, bt.FirstID, bt.LastID, chunk)
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
		err := b.withLazyTx(ctx, func(tx *sql.Tx) error {
			res, err := b.txStmts(tx).ExecContext(ctx, del, bt.FirstID, bt.LastID, chunk)
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
	b.forgetTraces(ctx, bt)
	return nil
}

// deleteBatch deletes a batch record and reports whether it still existed
// (shedding may have dropped it while it was in flight).
func deleteBatch(ctx context.Context, q *bufferdb.Queries, token string) (bool, error) {
	n, err := q.DeleteBatch(ctx, token)
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

// Reissue replaces a batch that the cloud refused as a whole (413 or 422,
// or an idempotency key it had seen with other content) by new batches of
// at most maxEvents rows each, under new tokens, and returns its drop report
// to the pending report. The new batches keep the batch's place in the
// queue: PendingBatch returns them next, in row order. It returns the new
// tokens (none when the batch no longer existed).
func (b *Buffer) Reissue(ctx context.Context, bt *Batch, maxEvents int) ([]string, error) {
	if maxEvents < 1 {
		maxEvents = 1
	}
	found := false
	var tokens []string
	err := b.withTx(ctx, func(tx *sql.Tx) error {
		tokens = nil
		var err error
		if found, err = deleteBatch(ctx, b.onTx(tx), bt.Token); err != nil || !found {
			return err
		}
		for i := 0; i < len(bt.Events); i += maxEvents {
			part := bt.Events[i:min(i+maxEvents, len(bt.Events))]
			var bytes int64
			for _, e := range part {
				bytes += e.Size
			}
			token := newToken()
			if err := b.onTx(tx).InsertBatch(ctx, bufferdb.InsertBatchParams{Token: token, Stream: string(bt.Stream),
				EventCount: int64(len(part)), FirstID: part[0].RowID, LastID: part[len(part)-1].RowID, Bytes: bytes,
				Drops: "[]", CreatedAt: bt.CreatedAt.UnixMilli()}); err != nil {
				return fmt.Errorf("insert batch: %w", err)
			}
			tokens = append(tokens, token)
		}
		return b.restoreDrops(ctx, tx, bt.Drops)
	})
	if err != nil {
		return nil, fmt.Errorf("buffer: reissue batch %s: %w", bt.Token, err)
	}
	if !found {
		return nil, nil
	}
	b.signal(bt.Stream)
	return tokens, nil
}

func (b *Buffer) restoreDrops(ctx context.Context, tx *sql.Tx, drops []protocol.Drop) error {
	q := b.onTx(tx)
	for _, d := range drops {
		if err := q.AddDrops(ctx, bufferdb.AddDropsParams{Reason: d.Reason, Class: d.Class, Pending: d.Count, Total: 0,
			FirstAt: d.FirstAt.UnixMilli(), LastAt: d.LastAt.UnixMilli()}); err != nil {
			return fmt.Errorf("restore drops: %w", err)
		}
	}
	return nil
}

// RecordFailure counts a failed attempt on the batch and on its rows.
func (b *Buffer) RecordFailure(ctx context.Context, bt *Batch, cause string) error {
	if len(cause) > 500 {
		cause = cause[:500]
	}
	err := b.withTx(ctx, func(tx *sql.Tx) error {
		if err := b.onTx(tx).BatchFailed(ctx, bufferdb.BatchFailedParams{LastError: cause, Token: bt.Token}); err != nil {
			return fmt.Errorf("count attempt: %w", err)
		}
		if _, err := tx.ExecContext(ctx, b.sq("retry_rows", bt.Stream), bt.FirstID, bt.LastID); err != nil {
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
	class := bt.Stream.class()
	found, err := b.removeBatch(ctx, bt, reason, nil)
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

// removeBatch takes a batch and its rows out of the buffer in one
// transaction: keep (when not nil) first copies the rows elsewhere, then the
// rows and the batch are deleted, the rows counted as dropped under reason
// (pending for the next drop report), and the batch's own drop report
// returned to pending. found is false when the batch no longer exists.
func (b *Buffer) removeBatch(ctx context.Context, bt *Batch, reason string, keep func(tx *sql.Tx, now int64) error) (found bool, err error) {
	now := b.now().UnixMilli()
	err = b.withTx(ctx, func(tx *sql.Tx) error {
		var err error
		if found, err = deleteBatch(ctx, b.onTx(tx), bt.Token); err != nil || !found {
			return err
		}
		if keep != nil {
			if err := keep(tx, now); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, b.sq("delete_rows", bt.Stream), bt.FirstID, bt.LastID); err != nil {
			return fmt.Errorf("delete rows: %w", err)
		}
		if len(bt.Events) > 0 {
			n := int64(len(bt.Events))
			if err := b.onTx(tx).AddDrops(ctx, bufferdb.AddDropsParams{Reason: reason, Class: bt.Stream.class(),
				Pending: n, Total: n, FirstAt: now, LastAt: now}); err != nil {
				return fmt.Errorf("count drops: %w", err)
			}
		}
		return b.restoreDrops(ctx, tx, bt.Drops)
	})
	return found, err
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
	n, err := b.qs.CountPendingDrops(ctx)
	if err != nil {
		return false, fmt.Errorf("buffer: count pending drops: %w", err)
	}
	return n > 0, nil
}

// OldestUnclaimed returns the creation time of the oldest row of stream not
// yet in a batch.
func (b *Buffer) OldestUnclaimed(ctx context.Context, s Stream) (time.Time, bool, error) {
	var ms int64
	err := b.stmt(b.sq("oldest_unclaimed", s)).QueryRowContext(ctx, b.cursor[s].Load()).Scan(&ms)
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
	for _, oldestOf := range []struct {
		name  string
		query func(context.Context) (int64, error)
	}{{"oldest_agent", b.qs.OldestAgent}, {"oldest_device", b.qs.OldestDevice}} {
		name := oldestOf.name
		ms, err := oldestOf.query(ctx)
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
	_, err := b.qs.EventExists(ctx, eventID)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("buffer: look up event %s: %w", eventID, err)
	}
	return true, nil
}
