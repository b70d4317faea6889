-- name: DeadLetterTotals :one
SELECT count(*) AS event_count, CAST(coalesce(sum(size), 0) AS INTEGER) AS bytes FROM dead_letters;

-- name: DeadLetterByReason :many
SELECT reason, count(*) AS event_count, CAST(coalesce(sum(size), 0) AS INTEGER) AS bytes, CAST(min(dead_at) AS INTEGER) AS oldest
FROM dead_letters GROUP BY reason ORDER BY reason;

-- name: DeadLetterRecent :many
SELECT event_id, stream, type, seq, reason, last_error, attempts, created_at, dead_at FROM dead_letters
ORDER BY id DESC LIMIT ?;

-- name: DeadLetterSizes :many
SELECT id, event_id, class, size, dead_at FROM dead_letters ORDER BY id;

-- name: DeadLetterScreenshotIDs :many
SELECT event_id FROM dead_letters WHERE class = 'screenshot';

-- name: DeadLetterSelectAll :many
SELECT id, event_id, stream, class, type, payload, size, file_size, device_id, adapter_type FROM dead_letters
WHERE id > ? ORDER BY id LIMIT ?;

-- name: DeadLetterSelectOne :one
SELECT id, event_id, stream, class, type, payload, size, file_size, device_id, adapter_type FROM dead_letters
WHERE event_id = ?;

-- name: DeadLetterDelete :exec
DELETE FROM dead_letters WHERE id = ?;
