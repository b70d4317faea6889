package buffer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// errCorrupt marks a buffer file that failed SQLite's own checks.
var errCorrupt = errors.New("buffer: database file is corrupt")

// isCorruption reports whether err says the SQLite file is damaged (as
// opposed to, say, a permission or disk-full error, which must stop the
// gateway with that message instead of moving the file aside).
func isCorruption(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errCorrupt) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"database disk image is malformed", "file is not a database", "SQLITE_CORRUPT", "SQLITE_NOTADB"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// load opens the database, checks it when the previous run did not close
// it cleanly, prepares statements and recovers counters.
func (b *Buffer) load(ctx context.Context) error {
	if err := b.openDB(ctx); err != nil {
		return err
	}
	err := b.checkUnclean(ctx)
	if err == nil {
		err = b.prepare(ctx)
	}
	if err == nil {
		err = b.recover(ctx)
	}
	if err == nil {
		err = b.loadTraced(ctx)
	}
	if err == nil {
		// Until Close marks it clean again, the next Open checks the file.
		err = b.qs.SetState(ctx, bufferdb.SetStateParams{Key: "clean_shutdown", Value: "0"})
	}
	if err != nil {
		b.closeDB()
	}
	return err
}

func (b *Buffer) closeDB() {
	if b.qs != nil {
		_ = b.qs.Close()
		b.qs, b.prepared = nil, nil
	}
	if b.db != nil {
		b.db.Close()
	}
}

// checkUnclean runs PRAGMA quick_check unless the previous run closed the
// buffer cleanly. SQLite survives process crashes by itself; the check is
// there for what it cannot survive: a disk or filesystem that lost or
// garbled writes in a power cut.
func (b *Buffer) checkUnclean(ctx context.Context) error {
	// Before prepare: statements are prepared only on a file that passed.
	clean, err := bufferdb.New(b.db).GetState(ctx, "clean_shutdown")
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("buffer: read state: %w", err)
	}
	if clean == "1" {
		return nil
	}
	start := time.Now()
	var res string
	if err := b.db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return fmt.Errorf("buffer: quick_check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("%w: quick_check: %s", errCorrupt, res)
	}
	b.log.Info("buffer checked after an unclean stop", "result", res, "took", time.Since(start).String())
	return nil
}

// salvaged is what could still be read from a corrupt buffer file.
type salvaged struct {
	nextSeq int64
	rows    map[string]int64 // class → rows still readable
}

// salvage reads, best effort, the sequence and row counts of a corrupt
// file, so the sequence continues and the drop report says how much was
// lost. Every error is ignored: the file is damaged.
func (b *Buffer) salvage(ctx context.Context) salvaged {
	out := salvaged{rows: map[string]int64{}}
	db, err := sql.Open(b.opts.Driver, b.dsn())
	if err != nil {
		return out
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	q := bufferdb.New(db) // not prepared: the file is damaged
	if v, err := q.GetNextSeq(ctx); err == nil {
		out.nextSeq = v
	}
	if v, err := q.MaxSeq(ctx); err == nil && v >= out.nextSeq {
		out.nextSeq = v + 1
	}
	agents, _ := q.SalvageAgentClasses(ctx)
	for _, r := range agents {
		out.rows[r.Class] += r.EventCount
	}
	devices, _ := q.SalvageDeviceClasses(ctx)
	for _, r := range devices {
		out.rows[r.Class] += r.EventCount
	}
	return out
}

// quarantine moves a corrupt buffer file (and its WAL and shared-memory
// files) aside as <path>.corrupt-<time>, for forensics, and returns the new
// name. A fresh buffer is then created in its place.
func (b *Buffer) quarantine() (string, error) {
	dest := b.opts.Path + ".corrupt-" + b.now().UTC().Format("20060102T150405Z")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		err := os.Rename(b.opts.Path+suffix, dest+suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("buffer: move corrupt file aside: %w", err)
		}
	}
	return dest, nil
}

// openOrQuarantine loads the buffer; if the file is corrupt, it moves the
// file aside, starts a fresh one that continues the sequence, and records
// the events it could count as dropped (reason buffer_corrupt), so the
// cloud learns of the loss in the next upload. The gateway keeps accepting
// data: refusing every agent because of a damaged file would lose more.
func (b *Buffer) openOrQuarantine(ctx context.Context) error {
	err := b.load(ctx)
	if !isCorruption(err) {
		return err
	}
	cause := err
	sv := b.salvage(ctx)
	dest, err := b.quarantine()
	if err != nil {
		return errors.Join(cause, err)
	}
	if err := b.load(ctx); err != nil {
		return fmt.Errorf("buffer: open a fresh file after quarantining %s: %w", dest, err)
	}
	if sv.nextSeq > b.nextSeq {
		b.nextSeq = sv.nextSeq
		if err := b.qs.SetNextSeq(ctx, strconv.FormatInt(sv.nextSeq, 10)); err != nil {
			return fmt.Errorf("buffer: continue sequence after quarantine: %w", err)
		}
	}
	now := b.now().UnixMilli()
	lost := int64(0)
	for class, n := range sv.rows {
		if n <= 0 {
			continue
		}
		lost += n
		if err := b.qs.AddDrops(ctx, bufferdb.AddDropsParams{Reason: protocol.DropBufferCorrupt, Class: class, Pending: n,
			Total: n, FirstAt: now, LastAt: now}); err != nil {
			return fmt.Errorf("buffer: record drops after quarantine: %w", err)
		}
	}
	b.quarantined.Add(1)
	b.log.Error("ALERT: buffer file was corrupt; moved aside and started a fresh buffer",
		"cause", cause.Error(), "quarantined_as", dest, "events_counted_as_dropped", lost,
		"sequence_continues_at", b.nextSeq)
	return nil
}
