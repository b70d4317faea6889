package buffer

// Write transactions on the writer goroutine: jobs submitted by claims,
// acknowledgements and maintenance, durable or lazy (no fsync of their
// own), bounded in rows by the chunk size.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

// Chunk sizing: while agents send, claims and deletes stay short so that
// acknowledgements do not wait behind them; with no append for idleAfter,
// nobody waits, and larger chunks drain a backlog faster.
const (
	idleAfter       = 250 * time.Millisecond
	idleChunkFactor = 4
)

// chunkRows is the row bound of the next claim or delete transaction.
func (b *Buffer) chunkRows() int {
	if time.Since(time.Unix(0, b.lastAppend.Load())) > idleAfter {
		return b.opts.WriteChunkRows * idleChunkFactor
	}
	return b.opts.WriteChunkRows
}

// withTx runs fn in a write transaction on the writer goroutine and
// returns once it committed or rolled back. Once submitted, the job's
// outcome is always awaited (a cancelled ctx makes fn fail quickly), so the
// caller never misses a commit it must account for.
func (b *Buffer) withTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return b.submit(&writeJob{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

// withLazyTx is withTx for a transaction whose loss to a power cut is
// harmless: it commits with synchronous=OFF, so it costs no fsync of its
// own. The WAL is written in order, so the next durable commit (every
// append's) or checkpoint makes it durable too; until then a power cut can
// only undo it, whole (WAL frames are checksummed). Acknowledgements use
// it: an undone Ack resends its batch under the same token, which the
// cloud answers from its idempotency store.
func (b *Buffer) withLazyTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return b.submit(&writeJob{ctx: ctx, fn: fn, lazy: true, done: make(chan error, 1)})
}

func (b *Buffer) submit(job *writeJob) error {
	ctx := job.ctx
	select {
	case b.jobCh <- job:
	case <-b.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-job.done:
		return err
	case <-b.writerDone:
		select {
		case err := <-job.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// runLazyTx runs fn like runTx, with synchronous=OFF for its commit only.
// It holds the connection from the first PRAGMA to the last, so that no
// other statement (a checkpoint, say) runs with the lowered setting; if the
// setting cannot be restored, the connection is discarded (the pool opens a
// new one with the DSN's setting).
func (b *Buffer) runLazyTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	if b.opts.Synchronous == "NORMAL" {
		return b.runTx(ctx, fn)
	}
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=OFF"); err != nil {
		return fmt.Errorf("lower synchronous: %w", err)
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.Background(), "PRAGMA synchronous="+b.opts.Synchronous); rerr != nil {
			b.log.Error("cannot restore synchronous; reopening the connection", "err", rerr)
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			err = errors.Join(err, fmt.Errorf("restore synchronous: %w", rerr))
		}
	}()
	return inTx(ctx, conn, fn)
}

// runTx runs fn in a transaction on the write connection (writer goroutine
// only).
func (b *Buffer) runTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return inTx(ctx, b.db, fn)
}

// inTx begins a transaction on db (the pool or one held connection), runs
// fn in it and commits, or rolls back when fn fails.
func inTx(ctx context.Context, db interface {
	BeginTx(context.Context, *sql.TxOptions) (*sql.Tx, error)
}, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
