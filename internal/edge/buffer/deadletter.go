package buffer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
)

// DefaultDeadLetterMaxEvents is the default bound on the number of dead
// letters (buffer.dead_letter_max_events).
const DefaultDeadLetterMaxEvents = 10000

// maxDeadLetterError bounds the stored text of the cloud's last answer.
const maxDeadLetterError = 1000

// deadLetterRecent is how many of the newest dead letters Stats lists.
const deadLetterRecent = 20

// replayChunk bounds the dead letters one replay transaction moves.
const replayChunk = 256

// DeadLetterPath is where the image of a screenshot dead letter is kept.
func (b *Buffer) DeadLetterPath(eventID string) string { return filepath.Join(b.deadDir, eventID) }

// DeadLetter moves the rows of a batch that cannot be delivered (in practice
// one event: the uplink isolates it first) out of its stream into the
// dead-letter table, in one transaction that also deletes the batch, counts
// the rows as dropped under reason (pending for the next drop report) and
// returns the batch's own drop report to pending. cause is the cloud's last
// answer (truncated to 1000 bytes). A screenshot's image file moves to the
// dead-letter directory. The dead letters are then held to their bounds.
func (b *Buffer) DeadLetter(ctx context.Context, bt *Batch, reason, cause string) error {
	if len(cause) > maxDeadLetterError {
		cause = cause[:maxDeadLetterError]
	}
	class := bt.Stream.class()
	found, err := b.removeBatch(ctx, bt, reason, func(tx *sql.Tx, now int64) error {
		if _, err := tx.ExecContext(ctx, b.sq("dead_letter_rows", bt.Stream), reason, cause, bt.Attempts+1, now,
			bt.FirstID, bt.LastID); err != nil {
			return fmt.Errorf("move rows to dead letters: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("buffer: dead-letter batch %s: %w", bt.Token, err)
	}
	if !found {
		return nil
	}
	b.mu.Lock()
	c := b.counters[class]
	c.claimedRows -= int64(len(bt.Events))
	c.claimedBytes -= bt.Bytes
	c.rows -= int64(len(bt.Events))
	c.bytes -= bt.Bytes
	b.deadRows += int64(len(bt.Events))
	b.deadBytes += bt.Bytes
	b.mu.Unlock()
	for _, e := range bt.Events {
		if bt.Stream == StreamScreenshots {
			if err := os.Rename(b.ScreenshotPath(e.EventID), b.DeadLetterPath(e.EventID)); err != nil && !errors.Is(err, os.ErrNotExist) {
				b.log.Warn("cannot move a dead letter's image aside; the next start retries", "event_id", e.EventID, "err", err)
			}
		}
		b.log.Error("event set aside as a dead letter", "event_id", e.EventID, "seq", e.Seq, "stream", string(bt.Stream),
			"reason", reason, "attempts", bt.Attempts+1, "err", cause)
	}
	if n := len(bt.Events); n > 0 {
		b.m.dropped.WithLabelValues(reason, class).Add(float64(n))
		b.m.deadMoved.WithLabelValues(reason).Add(float64(n))
	}
	// The upsert may have replaced an older dead letter of the same id.
	if err := b.refreshDeadTotals(ctx); err != nil {
		b.log.Warn("cannot count dead letters", "err", err)
	}
	if _, err := b.purgeDeadLetters(ctx); err != nil && ctx.Err() == nil {
		b.log.Error("purging dead letters failed", "err", err)
	}
	b.evaluate()
	// A drop report waits to be sent; wake the logs stream that carries it.
	b.signal(StreamLogs)
	return nil
}

type deadItem struct {
	id                          int64
	eventID, stream, class, typ string
	payload                     []byte
	size, fileSize              int64
	deviceID, adapterType       string
}

// deadItemOf is the dead letter of a bufferdb row (DeadLetterSelectOne and
// DeadLetterSelectAll select the same columns).
func deadItemOf(r bufferdb.DeadLetterSelectAllRow) deadItem {
	return deadItem{id: r.ID, eventID: r.EventID, stream: r.Stream, class: r.Class, typ: r.Type, payload: r.Payload,
		size: r.Size, fileSize: r.FileSize, deviceID: r.DeviceID, adapterType: r.AdapterType}
}

// ReplayDeadLetters moves dead letters back into their streams with new
// sequence numbers (their old ones were reported as dropped), after every
// row already buffered: the ones named by eventIDs, or all when eventIDs is
// empty. Unknown ids are skipped. A dead letter whose event is buffered
// again meanwhile (an agent resent it) is removed without a second row. It
// returns how many dead letters left the table.
func (b *Buffer) ReplayDeadLetters(ctx context.Context, eventIDs []string) (int, error) {
	total := 0
	if len(eventIDs) > 0 {
		seen := make(map[string]bool, len(eventIDs))
		unique := make([]string, 0, len(eventIDs))
		for _, id := range eventIDs {
			if !seen[id] {
				seen[id] = true
				unique = append(unique, id)
			}
		}
		eventIDs = unique
		for i := 0; i < len(eventIDs); i += replayChunk {
			var items []deadItem
			for _, id := range eventIDs[i:min(i+replayChunk, len(eventIDs))] {
				r, err := b.qs.DeadLetterSelectOne(ctx, id)
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
				if err != nil {
					return total, fmt.Errorf("buffer: read dead letter %s: %w", id, err)
				}
				items = append(items, deadItemOf(bufferdb.DeadLetterSelectAllRow(r)))
			}
			n, err := b.replay(ctx, items)
			total += n
			if err != nil {
				return total, err
			}
		}
		return total, nil
	}
	after := int64(0)
	for {
		rows, err := b.qs.DeadLetterSelectAll(ctx, bufferdb.DeadLetterSelectAllParams{ID: after, Limit: replayChunk})
		if err != nil {
			return total, fmt.Errorf("buffer: read dead letters: %w", err)
		}
		items := make([]deadItem, 0, len(rows))
		for _, r := range rows {
			items = append(items, deadItemOf(r))
		}
		if len(items) == 0 {
			return total, nil
		}
		after = items[len(items)-1].id
		n, err := b.replay(ctx, items)
		total += n
		if err != nil {
			return total, err
		}
	}
}

// replay moves items back in one transaction. A screenshot's image returns
// to screenshots/ first: if the process dies before the commit, Open moves
// it back to the dead-letter directory.
func (b *Buffer) replay(ctx context.Context, items []deadItem) (int, error) {
	if len(items) == 0 {
		return 0, nil
	}
	for _, it := range items {
		if it.stream == string(StreamScreenshots) {
			if _, err := os.Stat(b.ScreenshotPath(it.eventID)); errors.Is(err, os.ErrNotExist) {
				_ = os.Rename(b.DeadLetterPath(it.eventID), b.ScreenshotPath(it.eventID))
			}
		}
	}
	nowMS := b.now().UnixMilli()
	delta := classDelta{}
	moved := 0
	// fn runs on the writer goroutine, which owns nextSeq.
	err := b.withTx(ctx, func(tx *sql.Tx) error {
		clear(delta)
		moved = 0
		seq := b.nextSeq
		q := b.onTx(tx)
		for _, it := range items {
			var n int64
			var err error
			if it.stream == string(StreamDevice) {
				n, err = q.InsertDevice(ctx, bufferdb.InsertDeviceParams{EventID: it.eventID, Seq: seq, DeviceID: it.deviceID,
					AdapterType: it.adapterType, Payload: it.payload, Size: it.size, CreatedAt: nowMS})
			} else {
				n, err = q.InsertAgent(ctx, bufferdb.InsertAgentParams{EventID: it.eventID, Seq: seq, Type: it.typ,
					Class: it.class, Payload: it.payload, Size: it.size, FileSize: it.fileSize, CreatedAt: nowMS})
			}
			if err != nil {
				return fmt.Errorf("insert event %s: %w", it.eventID, err)
			}
			if n > 0 {
				seq++
				delta.add(it.class, it.size)
			}
			if err := q.DeadLetterDelete(ctx, it.id); err != nil {
				return fmt.Errorf("delete dead letter %s: %w", it.eventID, err)
			}
			moved++
		}
		if seq != b.nextSeq {
			if err := q.SetNextSeq(ctx, strconv.FormatInt(seq, 10)); err != nil {
				return fmt.Errorf("store next sequence: %w", err)
			}
			// Set before the commit: if it fails, a sequence number is
			// skipped, never reused.
			b.nextSeq = seq
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("buffer: replay dead letters: %w", err)
	}
	for _, it := range items {
		if it.stream == string(StreamScreenshots) {
			// Left only when the event was buffered again with its own image.
			_ = os.Remove(b.DeadLetterPath(it.eventID))
		}
	}
	b.applyDelta(delta)
	if err := b.refreshDeadTotals(ctx); err != nil {
		b.log.Warn("cannot count dead letters", "err", err)
	}
	b.m.deadReplayed.Add(float64(moved))
	b.log.Info("dead letters replayed", "count", moved)
	for class := range delta {
		b.signal(StreamForClass(class))
	}
	b.evaluate()
	return moved, nil
}

// refreshDeadTotals recounts the dead letters.
func (b *Buffer) refreshDeadTotals(ctx context.Context) error {
	t, err := b.qs.DeadLetterTotals(ctx)
	if err != nil {
		return fmt.Errorf("buffer: count dead letters: %w", err)
	}
	b.mu.Lock()
	b.deadRows, b.deadBytes = t.EventCount, t.Bytes
	b.mu.Unlock()
	return nil
}

// Purge causes.
const (
	purgeExpired = "expired"
	purgeBound   = "bound"
)

// purgeDeadLetters deletes dead letters set aside longer than the retention
// period ago, then the oldest while over the count or byte bound. It
// returns how many it deleted.
func (b *Buffer) purgeDeadLetters(ctx context.Context) (int, error) {
	b.mu.Lock()
	rowsNow, bytesNow := b.deadRows, b.deadBytes
	b.mu.Unlock()
	cutoff := b.now().Add(-b.opts.Retention).UnixMilli()
	if rowsNow == 0 {
		return 0, nil
	}
	type victim struct {
		id      int64
		eventID string
		class   string
		cause   string
	}
	var victims []victim
	sizes, err := b.qs.DeadLetterSizes(ctx)
	if err != nil {
		return 0, fmt.Errorf("buffer: list dead letters: %w", err)
	}
	count, bytes := rowsNow, bytesNow
	for _, r := range sizes {
		v := victim{id: r.ID, eventID: r.EventID, class: r.Class}
		size := r.Size
		switch {
		case r.DeadAt < cutoff:
			v.cause = purgeExpired
		case count > int64(b.opts.DeadLetterMaxEvents) || bytes > b.opts.DeadLetterMaxBytes:
			v.cause = purgeBound
		default:
			continue
		}
		count--
		bytes -= size
		victims = append(victims, v)
	}
	if len(victims) == 0 {
		return 0, nil
	}
	err = b.withTx(ctx, func(tx *sql.Tx) error {
		q := b.onTx(tx)
		for _, v := range victims {
			if err := q.DeadLetterDelete(ctx, v.id); err != nil {
				return fmt.Errorf("delete dead letter %s: %w", v.eventID, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("buffer: purge dead letters: %w", err)
	}
	byCause := map[string]int{}
	for _, v := range victims {
		byCause[v.cause]++
		if v.class == StreamScreenshots.class() {
			_ = os.Remove(b.DeadLetterPath(v.eventID))
		}
	}
	if err := b.refreshDeadTotals(ctx); err != nil {
		b.log.Warn("cannot count dead letters", "err", err)
	}
	for cause, n := range byCause {
		b.m.deadPurged.WithLabelValues(cause).Add(float64(n))
		b.log.Warn("dead letters purged", "cause", cause, "count", n,
			"max_events", b.opts.DeadLetterMaxEvents, "max_bytes", b.opts.DeadLetterMaxBytes, "retention", b.opts.Retention.String())
	}
	b.evaluate()
	return len(victims), nil
}

// recoverDeadLetters loads the dead-letter totals at Open and finishes a
// move of image files that a crash interrupted: an image belongs in the
// dead-letter directory while its event is a dead letter and not buffered,
// and in screenshots/ while it is buffered and not a dead letter. Other
// files in the dead-letter directory are removed.
func (b *Buffer) recoverDeadLetters(ctx context.Context) error {
	if err := b.refreshDeadTotals(ctx); err != nil {
		return err
	}
	ids := func(query func(context.Context) ([]string, error)) (map[string]bool, error) {
		list, err := query(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[string]bool, len(list))
		for _, id := range list {
			out[id] = true
		}
		return out, nil
	}
	dead, err := ids(b.qs.DeadLetterScreenshotIDs)
	if err != nil {
		return fmt.Errorf("buffer: list dead-letter screenshots: %w", err)
	}
	live, err := ids(b.qs.ScreenshotIDs)
	if err != nil {
		return fmt.Errorf("buffer: list screenshot rows: %w", err)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	for id := range dead {
		if !live[id] && !exists(b.DeadLetterPath(id)) && exists(b.ScreenshotPath(id)) {
			if err := os.Rename(b.ScreenshotPath(id), b.DeadLetterPath(id)); err != nil {
				return fmt.Errorf("buffer: move dead letter image %s: %w", id, err)
			}
		}
	}
	entries, err := os.ReadDir(b.deadDir)
	if err != nil {
		return fmt.Errorf("buffer: list dead-letter images: %w", err)
	}
	for _, e := range entries {
		id := e.Name()
		switch {
		case dead[id]:
		case live[id] && !exists(b.ScreenshotPath(id)):
			if err := os.Rename(b.DeadLetterPath(id), b.ScreenshotPath(id)); err != nil {
				return fmt.Errorf("buffer: move replayed image %s: %w", id, err)
			}
		default:
			_ = os.Remove(b.DeadLetterPath(id))
		}
	}
	return nil
}

// DeadLetterInfo describes one dead letter in Stats.
type DeadLetterInfo struct {
	EventID   string    `json:"event_id"`
	Stream    string    `json:"stream"`
	Type      string    `json:"type"`
	Seq       int64     `json:"seq"`
	Reason    string    `json:"reason"`
	LastError string    `json:"last_error"`
	Attempts  int       `json:"attempts"`
	CreatedAt time.Time `json:"buffered_at"`
	DeadAt    time.Time `json:"dead_at"`
}

// DeadLetterReason is the count of dead letters of one reason.
type DeadLetterReason struct {
	Count int64 `json:"count"`
	Bytes int64 `json:"bytes"`
}

// DeadLetterStats summarises the dead letters for /health/details.
type DeadLetterStats struct {
	Count int64 `json:"count"`
	Bytes int64 `json:"bytes"`
	// Oldest is when the oldest dead letter was set aside.
	Oldest   time.Time                   `json:"oldest,omitzero"`
	ByReason map[string]DeadLetterReason `json:"by_reason"`
	// LastError is the cloud's last answer for the newest dead letter.
	LastError string `json:"last_error,omitempty"`
	// Recent lists the newest dead letters, newest first (at most 20).
	Recent []DeadLetterInfo `json:"recent"`
}

// DeadLetters returns the dead-letter summary.
func (b *Buffer) DeadLetters(ctx context.Context) (DeadLetterStats, error) {
	st := DeadLetterStats{ByReason: map[string]DeadLetterReason{}, Recent: []DeadLetterInfo{}}
	byReason, err := b.qs.DeadLetterByReason(ctx)
	if err != nil {
		return st, fmt.Errorf("buffer: dead letters by reason: %w", err)
	}
	for _, row := range byReason {
		r := DeadLetterReason{Count: row.EventCount, Bytes: row.Bytes}
		st.ByReason[row.Reason] = r
		st.Count += r.Count
		st.Bytes += r.Bytes
		if t := time.UnixMilli(row.Oldest).UTC(); st.Oldest.IsZero() || t.Before(st.Oldest) {
			st.Oldest = t
		}
	}
	recent, err := b.qs.DeadLetterRecent(ctx, deadLetterRecent)
	if err != nil {
		return st, fmt.Errorf("buffer: recent dead letters: %w", err)
	}
	for _, r := range recent {
		st.Recent = append(st.Recent, DeadLetterInfo{EventID: r.EventID, Stream: r.Stream, Type: r.Type, Seq: r.Seq,
			Reason: r.Reason, LastError: r.LastError, Attempts: int(r.Attempts),
			CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), DeadAt: time.UnixMilli(r.DeadAt).UTC()})
	}
	if len(st.Recent) > 0 {
		st.LastError = st.Recent[0].LastError
	}
	return st, nil
}
