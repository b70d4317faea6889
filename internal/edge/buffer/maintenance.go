package buffer

// Maintenance off the commit path: the step the maintenance loop runs
// (usage, shedding, retention, dead-letter purge), the passive WAL
// checkpoint, statistics and the integrity check.

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

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
	totals, err := b.qs.SelectDropTotals(ctx)
	if err != nil {
		return st, fmt.Errorf("buffer: drop totals: %w", err)
	}
	for _, r := range totals {
		st.Drops = append(st.Drops, DropTotal{Reason: r.Reason, Class: r.Class, Pending: r.Pending, Total: r.Total})
	}
	return st, nil
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
