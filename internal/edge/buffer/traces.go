package buffer

// Trace contexts of buffered events (issue 19): schema.sql's trace_contexts.

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
)

// traceContextTTL bounds how long a trace context outlives its events'
// acknowledgement in the worst case (events dead-lettered or dropped).
const traceContextTTL = 24 * time.Hour

// TraceParents returns the traceparents of the traced appends that brought
// bt's events, oldest first, at most max ("" entries never; nil when none
// was traced).
func (b *Buffer) TraceParents(ctx context.Context, bt *Batch, max int) ([]string, error) {
	if !b.traced.Load() || len(bt.Events) == 0 || max <= 0 {
		return nil, nil
	}
	first, last := bt.Events[0].Seq, bt.Events[0].Seq
	for _, e := range bt.Events[1:] {
		first, last = min(first, e.Seq), max64(last, e.Seq)
	}
	out, err := b.qs.SelectTraceContexts(ctx, bufferdb.SelectTraceContextsParams{Class: bt.Stream.class(),
		FirstSeq: first, LastSeq: last, MaxRows: int64(max)})
	if err != nil {
		return nil, fmt.Errorf("buffer: read trace contexts of batch %s: %w", bt.Token, err)
	}
	return out, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// forgetTraces deletes the trace contexts of runs bt acknowledged (through
// its last sequence) and any older than traceContextTTL. A failure only
// leaves rows for the next acknowledgement.
func (b *Buffer) forgetTraces(ctx context.Context, bt *Batch) {
	if !b.traced.Load() || len(bt.Events) == 0 {
		return
	}
	through := bt.Events[0].Seq
	for _, e := range bt.Events[1:] {
		through = max64(through, e.Seq)
	}
	before := b.now().Add(-traceContextTTL).UnixMilli()
	err := b.withLazyTx(ctx, func(tx *sql.Tx) error {
		_, err := b.onTx(tx).DeleteTraceContexts(ctx, bufferdb.DeleteTraceContextsParams{Class: bt.Stream.class(),
			ThroughSeq: through, Before: before})
		return err
	})
	if err != nil {
		b.log.Warn("forget trace contexts", "err", err, "batch", bt.Token)
	}
}

// loadTraced sets traced when trace_contexts holds rows (at open).
func (b *Buffer) loadTraced(ctx context.Context) error {
	found, err := b.qs.AnyTraceContexts(ctx)
	if err != nil {
		return fmt.Errorf("buffer: read trace contexts: %w", err)
	}
	b.traced.Store(found)
	return nil
}
