package buffer

// Opening the file: the per-stream queries (sql/raw/streams.sql), the connection
// (one, EXCLUSIVE, WAL), the schema, and recovery of the sequence, the
// claim cursors, the counters and orphaned files.

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// streamQueries names the per-stream templates of sql/raw/streams.sql;
// parseStreamQueries fails when the file lacks one or has another.
var streamQueries = []string{
	"class_stats", "unclaimed_rows", "batch_rows", "retry_rows", "delete_rows", "delete_rows_chunk",
	"delete_unclaimed_upto", "oldest_unclaimed", "delete_acked_orphans", "legacy_acked_orphans",
	"legacy_batches", "legacy_batch_extent", "legacy_move_batch", "legacy_unclaimed_min",
	"legacy_move_unclaimed", "legacy_clear_tokens", "max_id", "dead_letter_rows",
}

// parseStreamQueries reads the hand-written per-stream statements
// (sql/raw/streams.sql says why sqlc cannot take them) and expands each
// into one copy per stream, named "<name>:<stream>". Every other statement
// is bufferdb's.
func parseStreamQueries() (map[string]string, error) {
	const file = "sql/raw/streams.sql"
	data, err := sqlFiles.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("buffer: read queries: %w", err)
	}
	return expandStreamQueries(file, data)
}

// expandStreamQueries parses the named templates of file and expands them
// per stream (see parseStreamQueries).
func expandStreamQueries(file string, data []byte) (map[string]string, error) {
	templates := map[string]string{}
	name := ""
	var cur strings.Builder
	flush := func() {
		if name != "" {
			templates[name] = strings.TrimSpace(cur.String())
		}
		cur.Reset()
	}
	for _, line := range strings.Split(string(data), "\n") {
		if n, ok := strings.CutPrefix(line, "-- name: "); ok {
			flush()
			name = strings.TrimSpace(n)
			continue
		}
		if strings.HasPrefix(line, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	for _, n := range streamQueries {
		if _, ok := templates[n]; !ok {
			return nil, fmt.Errorf("buffer: %s lacks query %s", file, n)
		}
	}
	out := map[string]string{}
	for name, text := range templates {
		if !slices.Contains(streamQueries, name) {
			return nil, fmt.Errorf("buffer: %s has query %s, which no code runs", file, name)
		}
		if !strings.Contains(text, "{table}") && !strings.Contains(text, "{stream}") {
			return nil, fmt.Errorf("buffer: %s: query %s is not per stream (it belongs in sql/*.sql, for sqlc)", file, name)
		}
		for _, st := range Streams() {
			fileSize, typ, deviceID, adapter := "file_size", "type", "''", "''"
			if st == StreamDevice {
				fileSize, typ, deviceID, adapter = "0", "adapter_type", "device_id", "adapter_type"
			}
			out[name+":"+string(st)] = strings.NewReplacer("{table}", st.tableName(), "{class}", st.class(),
				"{stream}", string(st), "{file_size}", fileSize, "{type}", typ, "{device_id}", deviceID,
				"{adapter_type}", adapter).Replace(text)
		}
	}
	return out, nil
}

// sq returns the copy of template query name for stream s.
func (b *Buffer) sq(name string, s Stream) string { return b.streamQ[name+":"+string(s)] }

func (b *Buffer) dsn() string {
	if b.opts.Driver == "sqlite3" {
		return "file:" + b.opts.Path + "?_journal_mode=WAL&_synchronous=" + b.opts.Synchronous +
			"&_busy_timeout=10000&_foreign_keys=on&_txlock=immediate&_journal_size_limit=67108864&_locking_mode=EXCLUSIVE"
	}
	v := url.Values{}
	// EXCLUSIVE before WAL: the WAL index then lives in heap memory. The
	// driver runs the _pragma list sorted by name (busy_timeout first), so
	// journal_mode(WAL) there would run before locking_mode and, on a file
	// already in WAL mode, map a -shm index; _journal_mode runs after the
	// list.
	v.Add("_pragma", "locking_mode(EXCLUSIVE)")
	v.Add("_pragma", "busy_timeout(10000)")
	v.Set("_journal_mode", "WAL")
	v.Add("_pragma", "synchronous("+b.opts.Synchronous+")")
	v.Add("_pragma", "foreign_keys(ON)")
	v.Add("_pragma", "journal_size_limit(67108864)")
	v.Set("_txlock", "immediate")
	return "file:" + b.opts.Path + "?" + v.Encode()
}

func (b *Buffer) openDB(ctx context.Context) error {
	db, err := sql.Open(b.opts.Driver, b.dsn())
	if err != nil {
		return fmt.Errorf("buffer: open %s: %w", b.opts.Path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	schema, err := sqlFiles.ReadFile("schema.sql")
	if err != nil {
		db.Close()
		return fmt.Errorf("buffer: read schema: %w", err)
	}
	if _, err := db.ExecContext(ctx, string(schema)); err != nil {
		db.Close()
		if strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "SQLITE_BUSY") {
			return fmt.Errorf("buffer: %s is in use by another process (one gateway per buffer.path): %w", b.opts.Path, err)
		}
		return fmt.Errorf("buffer: apply schema to %s: %w", b.opts.Path, err)
	}
	// Checkpoints run in the maintenance loop between transactions, never
	// inside a commit.
	if _, err := db.ExecContext(ctx, "PRAGMA wal_autocheckpoint=0"); err != nil {
		db.Close()
		return fmt.Errorf("buffer: disable autocheckpoint: %w", err)
	}
	b.db = db
	return nil
}

// recover loads the sequence and counters and removes orphan files.
func (b *Buffer) recover(ctx context.Context) error {
	next, err := b.qs.GetNextSeq(ctx)
	if err != nil {
		return fmt.Errorf("buffer: read next sequence: %w", err)
	}
	maxSeq, err := b.qs.MaxSeq(ctx)
	if err != nil {
		return fmt.Errorf("buffer: read max sequence: %w", err)
	}
	if maxSeq >= next {
		next = maxSeq + 1
	}
	b.nextSeq = next
	if err := b.upgradeFormat(ctx); err != nil {
		return err
	}
	for _, s := range Streams() {
		v, err := b.qs.GetState(ctx, s.cursorKey())
		if err != nil && err != sql.ErrNoRows {
			return fmt.Errorf("buffer: read %s claim cursor: %w", s, err)
		}
		var cur int64
		if v != "" {
			if cur, err = strconv.ParseInt(v, 10, 64); err != nil {
				return fmt.Errorf("buffer: %s claim cursor %q: %w", s, v, err)
			}
		}
		b.cursor[s].Store(cur)
		res, err := b.db.ExecContext(ctx, b.sq("delete_acked_orphans", s), cur)
		if err != nil {
			return fmt.Errorf("buffer: remove acknowledged %s rows: %w", s, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			b.log.Info("removed rows of batches acknowledged before a restart", "stream", s, "rows", n)
		}
		var c classCounters
		if err := b.db.QueryRowContext(ctx, b.sq("class_stats", s), cur, cur).Scan(&c.rows, &c.bytes, &c.claimedRows, &c.claimedBytes); err != nil {
			return fmt.Errorf("buffer: count %s rows: %w", s, err)
		}
		b.counters[s.class()] = &c
	}
	if err := b.recoverDeadLetters(ctx); err != nil {
		return err
	}
	return b.removeOrphanFiles(ctx)
}

func (b *Buffer) removeOrphanFiles(ctx context.Context) error {
	entries, err := os.ReadDir(b.shotDir)
	if err != nil {
		return fmt.Errorf("buffer: list screenshots: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	ids, err := b.qs.ScreenshotIDs(ctx)
	if err != nil {
		return fmt.Errorf("buffer: list screenshot rows: %w", err)
	}
	known := make(map[string]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	removed := 0
	for _, e := range entries {
		if !known[e.Name()] {
			if err := os.Remove(filepath.Join(b.shotDir, e.Name())); err == nil {
				removed++
			}
		}
	}
	if removed > 0 {
		b.log.Info("removed orphaned screenshot files", "count", removed)
	}
	return nil
}
