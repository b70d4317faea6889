-- Named queries of the buffer; "-- name: X" starts query X.

-- name: insert_agent
INSERT INTO agent_data_buffer (event_id, seq, type, class, payload, size, file_size, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO NOTHING;

-- name: insert_device
INSERT INTO device_data_buffer (event_id, seq, device_id, adapter_type, payload, size, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO NOTHING;

-- name: get_next_seq
SELECT CAST(value AS INTEGER) FROM gateway_state WHERE key = 'next_seq';

-- name: max_seq
SELECT max(coalesce((SELECT max(seq) FROM agent_data_buffer), 0),
           coalesce((SELECT max(seq) FROM device_data_buffer), 0));

-- name: set_next_seq
UPDATE gateway_state SET value = CAST(? AS TEXT) WHERE key = 'next_seq';

-- name: class_stats_agent
SELECT class, count(*), coalesce(sum(size), 0), count(batch_token), coalesce(sum(CASE WHEN batch_token IS NULL THEN 0 ELSE size END), 0)
FROM agent_data_buffer GROUP BY class;

-- name: class_stats_device
SELECT class, count(*), coalesce(sum(size), 0), count(batch_token), coalesce(sum(CASE WHEN batch_token IS NULL THEN 0 ELSE size END), 0)
FROM device_data_buffer GROUP BY class;

-- name: select_unclaimed_agent
SELECT id, event_id, seq, payload, size, file_size, created_at FROM agent_data_buffer
WHERE class = ? AND batch_token IS NULL ORDER BY id LIMIT ?;

-- name: select_unclaimed_device
SELECT id, event_id, seq, payload, size, 0, created_at FROM device_data_buffer
WHERE class = ? AND batch_token IS NULL ORDER BY id LIMIT ?;

-- name: claim_agent
UPDATE agent_data_buffer SET batch_token = ? WHERE class = ? AND batch_token IS NULL AND id BETWEEN ? AND ?;

-- name: claim_device
UPDATE device_data_buffer SET batch_token = ? WHERE class = ? AND batch_token IS NULL AND id BETWEEN ? AND ?;

-- name: select_batch_rows_agent
SELECT id, event_id, seq, payload, size, file_size, created_at FROM agent_data_buffer
WHERE id BETWEEN ? AND ? AND batch_token = ? ORDER BY id;

-- name: select_batch_rows_device
SELECT id, event_id, seq, payload, size, 0, created_at FROM device_data_buffer
WHERE id BETWEEN ? AND ? AND batch_token = ? ORDER BY id;

-- name: release_agent
UPDATE agent_data_buffer SET batch_token = NULL WHERE id BETWEEN ? AND ? AND batch_token = ?;

-- name: release_device
UPDATE device_data_buffer SET batch_token = NULL WHERE id BETWEEN ? AND ? AND batch_token = ?;

-- name: retry_agent
UPDATE agent_data_buffer SET retry_count = retry_count + 1 WHERE id BETWEEN ? AND ? AND batch_token = ?;

-- name: retry_device
UPDATE device_data_buffer SET retry_count = retry_count + 1 WHERE id BETWEEN ? AND ? AND batch_token = ?;

-- name: delete_batch_rows_agent
DELETE FROM agent_data_buffer WHERE id BETWEEN ? AND ? AND batch_token = ?;

-- name: delete_batch_rows_device
DELETE FROM device_data_buffer WHERE id BETWEEN ? AND ? AND batch_token = ?;

-- name: delete_unclaimed_upto_agent
DELETE FROM agent_data_buffer WHERE class = ? AND batch_token IS NULL AND id <= ?;

-- name: delete_unclaimed_upto_device
DELETE FROM device_data_buffer WHERE class = ? AND batch_token IS NULL AND id <= ?;

-- name: insert_batch
INSERT INTO upload_batches (token, stream, event_count, first_id, last_id, bytes, drops, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: select_pending_batch
SELECT token, first_id, last_id, bytes, drops, attempts, created_at FROM upload_batches
WHERE stream = ? ORDER BY created_at, rowid;

-- name: delete_batch
DELETE FROM upload_batches WHERE token = ?;

-- name: batch_failed
UPDATE upload_batches SET attempts = attempts + 1, last_error = ? WHERE token = ?;

-- name: select_pending_drops
SELECT reason, class, pending, coalesce(first_at, 0), coalesce(last_at, 0) FROM drop_counters WHERE pending > 0 ORDER BY reason, class;

-- name: clear_pending_drops
UPDATE drop_counters SET pending = 0, first_at = NULL, last_at = NULL WHERE pending > 0;

-- name: add_drops
INSERT INTO drop_counters (reason, class, pending, total, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (reason, class) DO UPDATE SET
    pending  = pending + excluded.pending,
    total    = total + excluded.total,
    first_at = min(coalesce(first_at, excluded.first_at), excluded.first_at),
    last_at  = max(coalesce(last_at, excluded.last_at), excluded.last_at);

-- name: select_drop_totals
SELECT reason, class, pending, total FROM drop_counters ORDER BY reason, class;

-- name: oldest_agent
SELECT created_at FROM agent_data_buffer ORDER BY id LIMIT 1;

-- name: oldest_device
SELECT created_at FROM device_data_buffer ORDER BY id LIMIT 1;

-- name: oldest_unclaimed_agent
SELECT created_at FROM agent_data_buffer WHERE class = ? AND batch_token IS NULL ORDER BY id LIMIT 1;

-- name: oldest_unclaimed_device
SELECT created_at FROM device_data_buffer WHERE class = ? AND batch_token IS NULL ORDER BY id LIMIT 1;

-- name: event_exists
SELECT 1 FROM agent_data_buffer WHERE event_id = ?;

-- name: screenshot_ids
SELECT event_id FROM agent_data_buffer WHERE class = 'screenshot';

-- name: update_batch_extent
UPDATE upload_batches SET event_count = ?, last_id = ?, bytes = ? WHERE token = ?;

-- name: delete_batch_rows_chunk_agent
DELETE FROM agent_data_buffer WHERE id IN (
    SELECT id FROM agent_data_buffer WHERE id BETWEEN ? AND ? AND batch_token = ? ORDER BY id LIMIT ?);

-- name: delete_batch_rows_chunk_device
DELETE FROM device_data_buffer WHERE id IN (
    SELECT id FROM device_data_buffer WHERE id BETWEEN ? AND ? AND batch_token = ? ORDER BY id LIMIT ?);

-- Rows whose batch record is gone were acknowledged by the cloud; an Ack
-- interrupted between its chunks leaves them (see Buffer.Ack).
-- name: delete_acked_orphans_agent
DELETE FROM agent_data_buffer
WHERE batch_token IS NOT NULL AND batch_token NOT IN (SELECT token FROM upload_batches);

-- name: delete_acked_orphans_device
DELETE FROM device_data_buffer
WHERE batch_token IS NOT NULL AND batch_token NOT IN (SELECT token FROM upload_batches);

-- name: get_state
SELECT value FROM gateway_state WHERE key = ?;

-- name: set_state
INSERT INTO gateway_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value;
