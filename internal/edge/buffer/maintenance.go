package buffer

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

func float64bits(f float64) uint64     { return math.Float64bits(f) }
func float64frombits(u uint64) float64 { return math.Float64frombits(u) }

// maintain samples filesystem usage, sheds screenshots under pressure,
// enforces retention (at most once a minute) and purges dead letters, off
// the commit path. The maintenance loop (see Start) runs it every
// MaintenanceInterval and at once when usage rises to a back-pressure level.
func (b *Buffer) maintain(ctx context.Context) {
	b.sampleFS()
	b.evaluate()
	if b.Level() >= LevelWarning {
		if err := b.shed(ctx); err != nil && ctx.Err() == nil {
			b.log.Error("shedding failed", "err", err)
		}
	}
	if time.Since(b.lastRetention) >= time.Minute || b.lastRetention.IsZero() {
		if err := b.EnforceRetention(ctx); err != nil && ctx.Err() == nil {
			b.log.Error("retention failed", "err", err)
		}
		if _, err := b.purgeDeadLetters(ctx); err != nil && ctx.Err() == nil {
			b.log.Error("purging dead letters failed", "err", err)
		}
		b.lastRetention = time.Now()
	}
}

// checkpointInterval is short so that each checkpoint writes little: the
// database file's fsync then stays small and does not hold up the WAL fsync
// of a concurrent commit (ext4 orders both through one journal).
const checkpointInterval = 200 * time.Millisecond

func (b *Buffer) sampleFS() {
	u, err := b.opts.FSUsage(b.dir)
	if err != nil {
		b.log.Warn("filesystem usage unavailable", "err", err)
		return
	}
	b.fsUsage.Store(float64bits(u))
}

// checkpoint copies WAL frames into the database file without blocking
// writers (PASSIVE). The WAL restarts from its beginning once a checkpoint
// completed, and journal_size_limit truncates it, so it stays small; a
// blocking (TRUNCATE/RESTART) checkpoint would stall acknowledgements.
func (b *Buffer) checkpoint(ctx context.Context) {
	var busy, logFrames, done int
	err := b.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &done)
	if err != nil && ctx.Err() == nil {
		b.log.Warn("wal checkpoint failed", "err", err)
	}
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
		if _, err := tx.ExecContext(ctx, b.q["add_drops"], reason, class, len(events), len(events), first, now); err != nil {
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

// ClassStats describes the rows of one class.
type ClassStats struct {
	Rows         int64 `json:"rows"`
	Bytes        int64 `json:"bytes"`
	ClaimedRows  int64 `json:"in_flight_rows"`
	ClaimedBytes int64 `json:"in_flight_bytes"`
	// Usage is Bytes ÷ max size.
	Usage float64 `json:"usage"`
}

// DropTotal is the count of drops of one reason and class.
type DropTotal struct {
	Reason  string `json:"reason"`
	Class   string `json:"class"`
	Total   int64  `json:"total"`
	Pending int64  `json:"unreported"`
}

// Stats is a snapshot of the buffer for /health/details.
type Stats struct {
	Level   string  `json:"level"`
	Usage   float64 `json:"usage"`
	FSUsage float64 `json:"filesystem_usage"`
	// Bytes is every accounted byte: the tables' rows and the dead letters.
	Bytes    int64 `json:"bytes"`
	MaxBytes int64 `json:"max_bytes"`
	// DeadLetterBytes is the dead letters' part of Bytes.
	DeadLetterBytes int64 `json:"dead_letter_bytes"`
	// FileBytes is the size of the SQLite file and its WAL on disk.
	FileBytes   int64                            `json:"file_bytes"`
	Synchronous string                           `json:"synchronous"`
	Tables      map[string]map[string]ClassStats `json:"tables"`
	Drops       []DropTotal                      `json:"drops"`
}

// Stats returns a snapshot of counters, usage and drop totals.
func (b *Buffer) Stats(ctx context.Context) (Stats, error) {
	st := Stats{
		Level:       b.Level().String(),
		Usage:       b.Usage(),
		FSUsage:     loadFloat(&b.fsUsage),
		MaxBytes:    b.opts.MaxBytes,
		Synchronous: b.opts.Synchronous,
		Tables: map[string]map[string]ClassStats{
			"agent_data_buffer":  {},
			"device_data_buffer": {},
		},
		Drops: []DropTotal{},
	}
	b.mu.Lock()
	for class, c := range b.counters {
		table := "agent_data_buffer"
		if class == protocol.ClassDevice {
			table = "device_data_buffer"
		}
		st.Tables[table][class] = ClassStats{Rows: c.rows, Bytes: c.bytes, ClaimedRows: c.claimedRows,
			ClaimedBytes: c.claimedBytes, Usage: float64(c.bytes) / float64(b.opts.MaxBytes)}
		st.Bytes += c.bytes
	}
	st.DeadLetterBytes = b.deadBytes
	st.Bytes += b.deadBytes
	b.mu.Unlock()
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(b.opts.Path + suffix); err == nil {
			st.FileBytes += fi.Size()
		}
	}
	rows, err := b.db.QueryContext(ctx, b.q["select_drop_totals"])
	if err != nil {
		return st, fmt.Errorf("buffer: drop totals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d DropTotal
		if err := rows.Scan(&d.Reason, &d.Class, &d.Pending, &d.Total); err != nil {
			return st, fmt.Errorf("buffer: drop totals: %w", err)
		}
		st.Drops = append(st.Drops, d)
	}
	return st, rows.Err()
}

// ScreenshotPath is where the image of a screenshot event is kept.
func (b *Buffer) ScreenshotPath(eventID string) string {
	return filepath.Join(b.shotDir, eventID)
}

// CreateScreenshotTemp creates a temporary file for an incoming image in the
// screenshot directory. The caller writes it and either places it with
// PlaceScreenshot or removes it.
func (b *Buffer) CreateScreenshotTemp() (*os.File, error) {
	f, err := os.CreateTemp(b.shotDir, "tmp-*")
	if err != nil {
		return nil, fmt.Errorf("buffer: create screenshot file: %w", err)
	}
	return f, nil
}

// PlaceScreenshot makes a written temporary file the image of eventID: it
// syncs the file (unless synchronous is NORMAL), closes it and renames it
// into place, then syncs the directory. On error the temporary file is
// removed.
func (b *Buffer) PlaceScreenshot(f *os.File, eventID string) error {
	durable := b.opts.Synchronous != "NORMAL"
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(f.Name())
			return fmt.Errorf("buffer: sync screenshot: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("buffer: close screenshot: %w", err)
	}
	if err := os.Rename(f.Name(), b.ScreenshotPath(eventID)); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("buffer: place screenshot: %w", err)
	}
	if durable {
		if d, err := os.Open(b.shotDir); err == nil {
			err = d.Sync()
			d.Close()
			if err != nil {
				return fmt.Errorf("buffer: sync screenshot directory: %w", err)
			}
		}
	}
	return nil
}

// IntegrityCheck runs PRAGMA integrity_check and returns its first line
// ("ok" when the file is sound).
func (b *Buffer) IntegrityCheck(ctx context.Context) (string, error) {
	var res string
	if err := b.db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return "", fmt.Errorf("buffer: integrity check: %w", err)
	}
	return res, nil
}
