package buffer

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
)

// The buffer is a lifecycle.Service: New opens the file, Start starts the
// writer goroutine (which owns every write) and two loops under
// lifecycle.EveryOrWake/Every — maintenance (usage, shedding, retention,
// dead-letter purge; every MaintenanceInterval and at once when usage rises
// to a back-pressure level) and the passive WAL checkpoint (every
// checkpointInterval) — and Stop ends them, checkpoints, marks a clean
// shutdown and closes the file.

// lifeState is the buffer's part of the lifecycle contract.
type lifeState struct {
	mu      sync.Mutex
	started bool
	stopped bool
	loops   *lifecycle.Group
}

// Open is New and Start: a running buffer, for callers that do not run it
// in a lifecycle.Group (tools, tests). Close stops it.
func Open(ctx context.Context, opts Options) (*Buffer, error) {
	b, err := New(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := b.Start(ctx); err != nil {
		_ = b.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	return b, nil
}

// Start starts the writer and the maintenance and checkpoint loops. It
// returns at once; ctx bounds only starting.
func (b *Buffer) Start(ctx context.Context) error {
	b.life.mu.Lock()
	defer b.life.mu.Unlock()
	if b.life.stopped {
		return errors.New("buffer: start after stop")
	}
	if b.life.started {
		return errors.New("buffer: started twice")
	}
	b.life.started = true
	go b.writerLoop()
	b.life.loops = lifecycle.NewGroup(b.log,
		lifecycle.Member{Name: "buffer maintenance", Service: lifecycle.NewLoop("buffer maintenance", b.log, func(ctx context.Context) error {
			return lifecycle.EveryOrWake(ctx, b.opts.MaintenanceInterval, true, b.wakeMaint, b.maintain)
		})},
		lifecycle.Member{Name: "buffer checkpoint", Service: lifecycle.NewLoop("buffer checkpoint", b.log, func(ctx context.Context) error {
			return lifecycle.Every(ctx, checkpointInterval, false, b.checkpoint)
		})},
	)
	return b.life.loops.Start(ctx)
}

// Stop stops the writer (appends and writes still queued are answered
// with ErrClosed) and the loops, then checkpoints the WAL, marks a clean
// shutdown and closes the database. Without Start it only closes; a second
// Stop returns nil. When ctx ends first, the file is left open and ctx's
// error returned.
func (b *Buffer) Stop(ctx context.Context) error {
	b.life.mu.Lock()
	defer b.life.mu.Unlock()
	if b.life.stopped {
		return nil
	}
	b.life.stopped = true
	close(b.closing)
	if !b.life.started {
		close(b.writerDone)
	} else {
		if err := b.life.loops.Stop(ctx); err != nil {
			return fmt.Errorf("buffer: stop: %w", err)
		}
		select {
		case <-b.writerDone:
		case <-ctx.Done():
			return fmt.Errorf("buffer: stop: writer: %w", ctx.Err())
		}
	}
	if _, err := b.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.log.Warn("final checkpoint failed", "err", err)
	}
	if err := b.qs.SetState(context.Background(), bufferdb.SetStateParams{Key: "clean_shutdown", Value: "1"}); err != nil {
		b.log.Warn("could not mark a clean shutdown; the next start checks the file", "err", err)
	}
	_ = b.qs.Close()
	return b.db.Close()
}

// Close is Stop without a deadline.
func (b *Buffer) Close() error { return b.Stop(context.Background()) }
