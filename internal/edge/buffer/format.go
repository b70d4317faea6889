package buffer

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
)

// bufferFormat is the layout this code writes: 2 records a batch's rows as
// an id range and moves a claim cursor per stream (sql/raw/streams.sql). Format 1
// (gateways before it) wrote each claimed row's batch_token. Format 3 adds
// agent_credentials (enrolled agents, schema.sql); a format 2 file gains the
// empty table and its agents enrol (a gateway before format 3 had no agent
// credentials to carry over).
const bufferFormat = "3"

// formatClaimCursors is the first format with claim cursors.
const formatClaimCursors = "2"

// upgradeFormat converts a format 1 file in place, in one transaction, so
// that nothing buffered before an upgrade is lost or sent twice:
//
//   - rows whose batch was acknowledged (token without a batch record) are
//     deleted, as format 1 did at start;
//   - each pending batch keeps its token, and its rows are renumbered into
//     a fresh id range above every existing row (format 1 batches of one
//     stream could interleave, which a range cannot express);
//   - the stream's unclaimed rows are renumbered above those, and the claim
//     cursor is set between the two.
//
// A file already in format 2 has only the format 3 table added (the schema
// creates it) and is stamped; a new one is only stamped. A file written by
// a newer gateway is refused rather than misread.
func (b *Buffer) upgradeFormat(ctx context.Context) error {
	v, err := b.qs.GetState(ctx, "buffer_format")
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("buffer: read format: %w", err)
	}
	if v == bufferFormat {
		return nil
	}
	if n, err := strconv.Atoi(v); err == nil && n > 3 { // 3 = bufferFormat
		return fmt.Errorf("buffer: %s is in format %s, newer than this gateway's %s; run the newer gateway", b.opts.Path, v, bufferFormat)
	}
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("buffer: upgrade format: %w", err)
	}
	defer tx.Rollback()
	moved := 0
	for _, s := range Streams() {
		if v == formatClaimCursors {
			break // rows and batches are already in the claim-cursor layout
		}
		n, err := b.upgradeStream(ctx, tx, s)
		if err != nil {
			return fmt.Errorf("buffer: upgrade %s rows to format %s: %w", s, bufferFormat, err)
		}
		moved += n
	}
	if err := b.onTx(tx).SetState(ctx, bufferdb.SetStateParams{Key: "buffer_format", Value: bufferFormat}); err != nil {
		return fmt.Errorf("buffer: stamp format: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("buffer: upgrade format: %w", err)
	}
	if moved > 0 {
		b.log.Info("buffer upgraded to claim cursors", "format", bufferFormat, "pending_batches", moved)
	}
	return nil
}

// upgradeStream converts one stream's rows and batches (see upgradeFormat)
// and returns how many pending batches it renumbered.
func (b *Buffer) upgradeStream(ctx context.Context, tx *sql.Tx, s Stream) (int, error) {
	q := b.onTx(tx)
	if _, err := tx.ExecContext(ctx, b.sq("legacy_acked_orphans", s)); err != nil {
		return 0, fmt.Errorf("remove acknowledged rows: %w", err)
	}
	var tokens []string
	rows, err := tx.QueryContext(ctx, b.sq("legacy_batches", s))
	if err != nil {
		return 0, fmt.Errorf("list batches: %w", err)
	}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return 0, fmt.Errorf("list batches: %w", err)
		}
		tokens = append(tokens, t)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("list batches: %w", err)
	}
	var next int64
	if err := tx.QueryRowContext(ctx, b.sq("max_id", s)).Scan(&next); err != nil {
		return 0, fmt.Errorf("max id: %w", err)
	}
	next++
	moved := 0
	for _, t := range tokens {
		var lo, hi int64
		if err := tx.QueryRowContext(ctx, b.sq("legacy_batch_extent", s), t).Scan(&lo, &hi); err != nil {
			return 0, fmt.Errorf("batch %s extent: %w", t, err)
		}
		if lo == 0 {
			// A batch with only a drop report: an empty range.
			if err := q.SetBatchRange(ctx, bufferdb.SetBatchRangeParams{FirstID: 0, LastID: 0, Token: t}); err != nil {
				return 0, fmt.Errorf("batch %s range: %w", t, err)
			}
			continue
		}
		off := next - lo
		if _, err := tx.ExecContext(ctx, b.sq("legacy_move_batch", s), off, t); err != nil {
			return 0, fmt.Errorf("renumber batch %s: %w", t, err)
		}
		if err := q.SetBatchRange(ctx, bufferdb.SetBatchRangeParams{FirstID: lo + off, LastID: hi + off, Token: t}); err != nil {
			return 0, fmt.Errorf("batch %s range: %w", t, err)
		}
		next = hi + off + 1
		moved++
	}
	cursor := int64(0)
	if moved > 0 {
		cursor = next - 1
		var lo int64
		if err := tx.QueryRowContext(ctx, b.sq("legacy_unclaimed_min", s)).Scan(&lo); err != nil {
			return 0, fmt.Errorf("unclaimed rows: %w", err)
		}
		if lo > 0 {
			if _, err := tx.ExecContext(ctx, b.sq("legacy_move_unclaimed", s), next-lo); err != nil {
				return 0, fmt.Errorf("renumber unclaimed rows: %w", err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, b.sq("legacy_clear_tokens", s)); err != nil {
		return 0, fmt.Errorf("clear tokens: %w", err)
	}
	if err := q.SetState(ctx, bufferdb.SetStateParams{Key: s.cursorKey(), Value: strconv.FormatInt(cursor, 10)}); err != nil {
		return 0, fmt.Errorf("set claim cursor: %w", err)
	}
	return moved, nil
}
