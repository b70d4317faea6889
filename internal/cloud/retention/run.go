package retention

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/retention/retentiondb"
)

// work is one run in progress on the connection holding the lock.
type work struct {
	r    *Runner
	conn *pgx.Conn
	q    *retentiondb.Queries
	res  *Result
}

// maxDropRounds bounds the global drop's calls (each drops at most 100
// partitions or chunks per series).
const maxDropRounds = 50

// apply deletes row by row, then drops what is past the global horizon. A
// failure row by row stops the run before the drop: an archiving
// organisation's rows must not go with a partition unarchived.
func (w *work) apply(ctx context.Context) error {
	horizons, err := w.q.Horizons(ctx)
	if err != nil {
		return fmt.Errorf("retention: horizons: %w", err)
	}
	var errs []error
	for _, h := range horizons {
		if err := w.deleteRows(ctx, h); err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := w.drop(ctx); err != nil {
		return err
	}
	return w.rollups(ctx)
}

// rollups deletes the reports' rollups of the days past the horizons
// (monitoring.retention_rollups, bounded per call) and marks the horizon's
// day for recomputation, so that no report shows what retention deleted.
func (w *work) rollups(ctx context.Context) error {
	for {
		n, err := w.q.DeleteRollups(ctx, int32(w.r.cfg.BatchSize))
		if err != nil {
			return fmt.Errorf("retention: report rollups: %w", err)
		}
		w.res.RollupRows += n
		w.r.rows.WithLabelValues("activity_rollups").Add(float64(n))
		if n == 0 {
			return nil
		}
	}
}

// deleteRows deletes the organisation's rows of the series past its
// horizon, batch by batch.
func (w *work) deleteRows(ctx context.Context, h retentiondb.HorizonsRow) error {
	for {
		n, err := w.batch(ctx, h)
		if err != nil {
			return fmt.Errorf("retention: organisation %d, %s: %w", h.OrganizationID, h.TableName, err)
		}
		if n < w.r.cfg.BatchSize {
			return nil
		}
		if w.r.cfg.BatchPause > 0 {
			t := time.NewTimer(w.r.cfg.BatchPause)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// batch deletes one batch in a transaction (archiving it first when the
// policy says so, and adding its rows to the run record in the same
// transaction), then deletes its screenshot files. It returns the rows
// deleted.
func (w *work) batch(ctx context.Context, h retentiondb.HorizonsRow) (int, error) {
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	qtx := w.q.WithTx(tx)
	rows, err := qtx.DeleteBatch(ctx, retentiondb.DeleteBatchParams{TableName: h.TableName, OrganizationID: h.OrganizationID,
		MaxRows: int32(w.r.cfg.BatchSize)})
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	archived := 0
	if h.Action == "archive" {
		if err := w.archive(ctx, h, rows); err != nil {
			return 0, err
		}
		archived = 1
	}
	if err := qtx.RunProgress(ctx, retentiondb.RunProgressParams{RunID: w.res.RunID, TableName: h.TableName,
		Rows: int64(len(rows)), Archived: int32(archived)}); err != nil {
		return 0, fmt.Errorf("record progress: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	w.res.Rows[h.TableName] += int64(len(rows))
	w.res.Archived += archived
	w.r.rows.WithLabelValues(h.TableName).Add(float64(len(rows)))
	if h.TableName != "screenshots" {
		return len(rows), nil
	}
	// The rows are gone: now their files. Only keys under the
	// organisation's own screenshot prefix (a row cannot point retention
	// at another organisation's file or an archive); a row in both schemas
	// (a re-sync in progress) names its file twice.
	prefix := "screenshots/" + strconv.FormatInt(h.OrganizationID, 10) + "/"
	seen := map[string]bool{}
	var files, bytes int64
	var ferr error
	for _, row := range rows {
		if row.FilePath == "" || seen[row.FilePath] || !strings.HasPrefix(row.FilePath, prefix) {
			continue
		}
		seen[row.FilePath] = true
		if err := w.r.files.Delete(ctx, row.FilePath); err != nil {
			ferr = fmt.Errorf("delete file (the screenshot sweep removes it later): %w", err)
			break
		}
		files++
		bytes += row.FileSize
	}
	w.res.Files += files
	w.res.Bytes += bytes
	w.r.filesTotal.Add(float64(files))
	w.r.bytesTotal.Add(float64(bytes))
	if files > 0 {
		if err := w.q.RunProgress(ctx, retentiondb.RunProgressParams{RunID: w.res.RunID, Files: files, Bytes: bytes}); err != nil {
			return len(rows), errors.Join(ferr, fmt.Errorf("record progress: %w", err))
		}
	}
	return len(rows), ferr
}

// drop drops the partitions and chunks wholly past the global horizon,
// counting their rows first.
func (w *work) drop(ctx context.Context) error {
	kind, err := w.q.StorageKind(ctx)
	if err != nil {
		return fmt.Errorf("retention: storage kind: %w", err)
	}
	for round := 0; round < maxDropRounds; round++ {
		expired, err := w.q.ExpiredPartitions(ctx)
		if err != nil {
			return fmt.Errorf("retention: expired partitions: %w", err)
		}
		if len(expired) == 0 {
			return nil
		}
		counts := make(map[string]retentiondb.ExpiredPartitionsRow, len(expired))
		for _, e := range expired {
			counts[e.PartitionName] = e
		}
		dropped, err := w.q.DropExpiredPartitions(ctx)
		if err != nil {
			return fmt.Errorf("retention: drop expired partitions: %w", err)
		}
		if kind == "timescaledb" {
			for _, t := range Tables() {
				chunks, err := w.q.ApplyRetention(ctx, t)
				if err != nil {
					return fmt.Errorf("retention: drop expired chunks of %s: %w", t, err)
				}
				dropped = append(dropped, chunks...)
			}
		}
		if len(dropped) == 0 {
			return nil
		}
		perTable := map[string]int64{}
		for _, name := range dropped {
			w.res.Partitions = append(w.res.Partitions, name)
			if c, ok := counts[name]; ok {
				perTable[c.TableName] += c.Rows
			}
		}
		for t, n := range perTable {
			if err := w.q.RunProgress(ctx, retentiondb.RunProgressParams{RunID: w.res.RunID, TableName: t, Rows: n}); err != nil {
				return fmt.Errorf("retention: record progress: %w", err)
			}
			w.res.Rows[t] += n
			w.r.rows.WithLabelValues(t).Add(float64(n))
		}
	}
	return nil
}

// preview counts what apply would delete, changing nothing but the run's
// own record.
func (w *work) preview(ctx context.Context) error {
	rows, err := w.q.Preview(ctx)
	if err != nil {
		return fmt.Errorf("retention: preview: %w", err)
	}
	perTable := map[string]int64{}
	for _, p := range rows {
		perTable[p.TableName] += p.Rows
		w.res.Files += p.Files
		w.res.Bytes += p.Bytes
	}
	expired, err := w.q.ExpiredPartitions(ctx)
	if err != nil {
		return fmt.Errorf("retention: expired partitions: %w", err)
	}
	for _, e := range expired {
		w.res.Partitions = append(w.res.Partitions, e.PartitionName)
		perTable[e.TableName] += e.RowsUnlisted
	}
	for t, n := range perTable {
		w.res.Rows[t] += n
		if err := w.q.RunProgress(ctx, retentiondb.RunProgressParams{RunID: w.res.RunID, TableName: t, Rows: n}); err != nil {
			return fmt.Errorf("retention: record progress: %w", err)
		}
	}
	if w.res.Files > 0 || w.res.Bytes > 0 {
		if err := w.q.RunProgress(ctx, retentiondb.RunProgressParams{RunID: w.res.RunID, Files: w.res.Files, Bytes: w.res.Bytes}); err != nil {
			return fmt.Errorf("retention: record progress: %w", err)
		}
	}
	return nil
}
