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

-- name: get_state
SELECT value FROM gateway_state WHERE key = ?;

-- name: set_state
INSERT INTO gateway_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value;

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

-- name: event_exists
SELECT 1 FROM agent_data_buffer WHERE event_id = ?;

-- name: screenshot_ids
SELECT event_id FROM agent_data_buffer WHERE class = 'screenshot';

-- Queries below that mention {table}, {class}, {stream} or {file_size} are
-- templates: Open makes one copy per upload stream, named "<name>:<stream>"
-- (e.g. "unclaimed_rows:logs"). The class is a literal so that SQLite can
-- use the screenshots' partial index.
--
-- A stream's rows are claimed in id order. Every row of the stream's class
-- with id <= the stream's claim cursor (gateway_state key
-- "claimed_through:<stream>") belongs to exactly one batch, whose
-- [first_id, last_id] range contains it; rows above the cursor are
-- unclaimed. A claim writes one batch record and moves the cursor; it does
-- not touch the rows.

-- name: class_stats
SELECT count(*), coalesce(sum(size), 0),
       coalesce(sum(CASE WHEN id <= ? THEN 1 ELSE 0 END), 0),
       coalesce(sum(CASE WHEN id <= ? THEN size ELSE 0 END), 0)
FROM {table} WHERE class = '{class}';

-- name: unclaimed_rows
SELECT id, event_id, seq, payload, size, {file_size}, created_at FROM {table}
WHERE class = '{class}' AND id > ? ORDER BY id LIMIT ?;

-- name: batch_rows
SELECT id, event_id, seq, payload, size, {file_size}, created_at FROM {table}
WHERE class = '{class}' AND id BETWEEN ? AND ? ORDER BY id;

-- name: retry_rows
UPDATE {table} SET retry_count = retry_count + 1 WHERE class = '{class}' AND id BETWEEN ? AND ?;

-- name: delete_rows
DELETE FROM {table} WHERE class = '{class}' AND id BETWEEN ? AND ?;

-- name: delete_rows_chunk
DELETE FROM {table} WHERE id IN (
    SELECT id FROM {table} WHERE class = '{class}' AND id BETWEEN ? AND ? ORDER BY id LIMIT ?);

-- name: delete_unclaimed_upto
DELETE FROM {table} WHERE class = '{class}' AND id > ? AND id <= ?;

-- name: oldest_unclaimed
SELECT created_at FROM {table} WHERE class = '{class}' AND id > ? ORDER BY id LIMIT 1;

-- Rows at or below the cursor outside every batch range were acknowledged
-- by the cloud: an Ack interrupted between its chunks leaves them (see
-- Buffer.Ack).
-- name: delete_acked_orphans
DELETE FROM {table} WHERE class = '{class}' AND id <= ? AND NOT EXISTS (
    SELECT 1 FROM upload_batches b WHERE b.stream = '{stream}' AND {table}.id BETWEEN b.first_id AND b.last_id);

-- Upgrading a buffer written before claim cursors (format 1, whose claims
-- set batch_token on every row): see Buffer.upgradeFormat.
-- name: legacy_acked_orphans
DELETE FROM {table} WHERE class = '{class}' AND batch_token IS NOT NULL
    AND batch_token NOT IN (SELECT token FROM upload_batches);

-- name: legacy_batches
SELECT token FROM upload_batches WHERE stream = '{stream}' ORDER BY created_at, rowid;

-- name: legacy_batch_extent
SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM {table} WHERE class = '{class}' AND batch_token = ?;

-- name: legacy_move_batch
UPDATE {table} SET id = id + ? WHERE class = '{class}' AND batch_token = ?;

-- name: legacy_unclaimed_min
SELECT coalesce(min(id), 0) FROM {table} WHERE class = '{class}' AND batch_token IS NULL;

-- name: legacy_move_unclaimed
UPDATE {table} SET id = id + ? WHERE class = '{class}' AND batch_token IS NULL;

-- name: legacy_clear_tokens
UPDATE {table} SET batch_token = NULL WHERE class = '{class}' AND batch_token IS NOT NULL;

-- name: max_id
SELECT coalesce(max(id), 0) FROM {table};

-- name: set_batch_range
UPDATE upload_batches SET first_id = ?, last_id = ? WHERE token = ?;

-- Dead letters (see schema.sql). The move is a template: one copy per stream.
-- name: dead_letter_rows
INSERT INTO dead_letters (event_id, stream, class, type, seq, payload, size, file_size, device_id, adapter_type,
                          reason, last_error, attempts, created_at, dead_at)
SELECT event_id, '{stream}', class, {type}, seq, payload, size, {file_size}, {device_id}, {adapter_type}, ?, ?, ?, created_at, ?
FROM {table} WHERE class = '{class}' AND id BETWEEN ? AND ?
ON CONFLICT (event_id) DO UPDATE SET
    stream = excluded.stream, class = excluded.class, type = excluded.type, seq = excluded.seq,
    payload = excluded.payload, size = excluded.size, file_size = excluded.file_size,
    device_id = excluded.device_id, adapter_type = excluded.adapter_type, reason = excluded.reason,
    last_error = excluded.last_error, attempts = excluded.attempts, created_at = excluded.created_at,
    dead_at = excluded.dead_at;

-- name: dead_letter_totals
SELECT count(*), coalesce(sum(size), 0) FROM dead_letters;

-- name: dead_letter_by_reason
SELECT reason, count(*), coalesce(sum(size), 0), min(dead_at) FROM dead_letters GROUP BY reason ORDER BY reason;

-- name: dead_letter_recent
SELECT event_id, stream, type, seq, reason, last_error, attempts, created_at, dead_at FROM dead_letters
ORDER BY id DESC LIMIT ?;

-- name: dead_letter_sizes
SELECT id, event_id, class, size, dead_at FROM dead_letters ORDER BY id;

-- name: dead_letter_screenshot_ids
SELECT event_id FROM dead_letters WHERE class = 'screenshot';

-- name: dead_letter_select_all
SELECT id, event_id, stream, class, type, payload, size, file_size, device_id, adapter_type FROM dead_letters
WHERE id > ? ORDER BY id LIMIT ?;

-- name: dead_letter_select_one
SELECT id, event_id, stream, class, type, payload, size, file_size, device_id, adapter_type FROM dead_letters
WHERE event_id = ?;

-- name: dead_letter_delete
DELETE FROM dead_letters WHERE id = ?;

-- name: credential_put
INSERT INTO agent_credentials (agent_uid, credential_hash, computer_name, enrolled_at, reported_at)
VALUES (?, ?, ?, ?, NULL)
ON CONFLICT (agent_uid) DO UPDATE SET credential_hash = excluded.credential_hash,
    computer_name = excluded.computer_name, enrolled_at = excluded.enrolled_at, reported_at = NULL;

-- name: credential_exists
SELECT count(*) FROM agent_credentials WHERE agent_uid = ?;

-- name: credential_lookup
SELECT agent_uid FROM agent_credentials WHERE credential_hash = ?;

-- name: credential_delete
DELETE FROM agent_credentials WHERE agent_uid = ?;

-- name: credential_count
SELECT count(*) FROM agent_credentials;

-- name: credential_unreported
SELECT agent_uid, computer_name, enrolled_at FROM agent_credentials WHERE reported_at IS NULL ORDER BY enrolled_at LIMIT ?;

-- name: credential_reported
UPDATE agent_credentials SET reported_at = ? WHERE agent_uid = ? AND enrolled_at = ?;
