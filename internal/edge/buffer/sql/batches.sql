-- InsertBatch records a claimed batch: its rows are those of the stream's
-- class with ids in [first_id, last_id] (raw/streams.sql).
-- name: InsertBatch :exec
INSERT INTO upload_batches (token, stream, event_count, first_id, last_id, bytes, drops, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: SelectPendingBatches :many
SELECT token, first_id, last_id, bytes, drops, attempts, created_at FROM upload_batches
WHERE stream = ? ORDER BY created_at, rowid;

-- name: DeleteBatch :execrows
DELETE FROM upload_batches WHERE token = ?;

-- name: BatchFailed :exec
UPDATE upload_batches SET attempts = attempts + 1, last_error = ? WHERE token = ?;

-- SetBatchRange is used upgrading a format 1 file (Buffer.upgradeFormat).
-- name: SetBatchRange :exec
UPDATE upload_batches SET first_id = ?, last_id = ? WHERE token = ?;
