package buffer

// Drops: rows removed unsent — screenshots shed under disk pressure,
// rows past retention, a pending batch dropped whole — each counted by class
// and reason for the drop report.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// encodeDrops marshals a drop list (never null).
func encodeDrops(d []protocol.Drop) string {
	if len(d) == 0 {
		return "[]"
	}
	out, _ := json.Marshal(d)
	return string(out)
}

// shedBatch is how many screenshots one shedding step deletes.
const shedBatch = 32

// shed deletes the oldest unclaimed screenshots while the buffer is at the
// warning level or above, counting each as dropped (disk_pressure).
func (b *Buffer) shed(ctx context.Context) error {
	for b.Level() >= LevelWarning {
		n, err := b.dropOldest(ctx, StreamScreenshots, shedBatch, time.Time{}, protocol.DropDiskPressure)
		if err != nil {
			return err
		}
		if n == 0 {
			// Only screenshots already in an upload batch are left (the
			// cloud is unreachable): shed that batch too.
			if n, err = b.dropPendingBatch(ctx, StreamScreenshots, protocol.DropDiskPressure); err != nil || n == 0 {
				return err
			}
		}
		b.evaluate()
	}
	return nil
}

// EnforceRetention drops unclaimed rows older than the retention period,
// counting them as dropped (retention). Rows already in a batch are sent.
func (b *Buffer) EnforceRetention(ctx context.Context) error {
	cutoff := b.now().Add(-b.opts.Retention)
	for _, s := range Streams() {
		for {
			n, err := b.dropOldest(ctx, s, 500, cutoff, protocol.DropRetention)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
		}
	}
	return nil
}

// dropOldest deletes up to limit of the oldest unclaimed rows of stream
// (only those created before cutoff, unless cutoff is zero) in one
// transaction that also counts the drops. It returns how many it deleted.
func (b *Buffer) dropOldest(ctx context.Context, s Stream, limit int, cutoff time.Time, reason string) (int, error) {
	class := s.class()
	var dropped []StoredEvent
	now := b.now().UnixMilli()
	mu := b.claimMu[s]
	mu.Lock()
	defer mu.Unlock()
	cur := b.cursor[s].Load()
	err := b.withTx(ctx, func(tx *sql.Tx) error {
		dropped = nil
		rows, err := tx.QueryContext(ctx, b.sq("unclaimed_rows", s), cur, limit)
		if err != nil {
			return fmt.Errorf("select rows: %w", err)
		}
		events, err := scanEvents(rows)
		if err != nil {
			return fmt.Errorf("select rows: %w", err)
		}
		if !cutoff.IsZero() {
			n := 0
			for n < len(events) && events[n].CreatedAt.Before(cutoff) {
				n++
			}
			events = events[:n]
		}
		if len(events) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, b.sq("delete_unclaimed_upto", s), cur, events[len(events)-1].RowID); err != nil {
			return fmt.Errorf("delete rows: %w", err)
		}
		first := events[0].CreatedAt.UnixMilli()
		n := int64(len(events))
		if err := b.onTx(tx).AddDrops(ctx, bufferdb.AddDropsParams{Reason: reason, Class: class, Pending: n, Total: n,
			FirstAt: first, LastAt: now}); err != nil {
			return fmt.Errorf("count drops: %w", err)
		}
		dropped = events
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("buffer: drop %s rows (%s): %w", class, reason, err)
	}
	if len(dropped) == 0 {
		return 0, nil
	}
	var bytes int64
	for _, e := range dropped {
		bytes += e.Size
		if s == StreamScreenshots {
			_ = os.Remove(b.ScreenshotPath(e.EventID))
		}
	}
	b.mu.Lock()
	c := b.counters[class]
	c.rows -= int64(len(dropped))
	c.bytes -= bytes
	b.mu.Unlock()
	b.m.dropped.WithLabelValues(reason, class).Add(float64(len(dropped)))
	b.log.Warn("events dropped", "reason", reason, "class", class, "count", len(dropped), "bytes", bytes)
	// A drop report waits to be sent; wake the logs stream that carries it.
	b.signal(StreamLogs)
	return len(dropped), nil
}

// dropPendingBatch deletes the pending batch of stream with its rows,
// counting them as dropped. If the batch is being uploaded at that moment
// and the cloud accepts it, its events are both delivered and reported as
// dropped: the report errs on the side of a false alarm, never of silence.
func (b *Buffer) dropPendingBatch(ctx context.Context, s Stream, reason string) (int, error) {
	bt, err := b.PendingBatch(ctx, s, nil)
	if err != nil || bt == nil {
		return 0, err
	}
	if err := b.Reject(ctx, bt, reason); err != nil {
		return 0, err
	}
	return len(bt.Events), nil
}
