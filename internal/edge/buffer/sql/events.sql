-- InsertAgent buffers an agent event; it affects no row when the event id
-- is buffered already. Prepared once on the write connection (Prepare) and
-- used in every group commit.
-- name: InsertAgent :execrows
INSERT INTO agent_data_buffer (event_id, seq, type, class, payload, size, file_size, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO NOTHING;

-- InsertDevice buffers a device event (as InsertAgent).
-- name: InsertDevice :execrows
INSERT INTO device_data_buffer (event_id, seq, device_id, adapter_type, payload, size, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO NOTHING;

-- name: GetNextSeq :one
SELECT CAST(value AS INTEGER) AS next_seq FROM gateway_state WHERE key = 'next_seq';

-- MaxSeq is the highest sequence number buffered (0 when none).
-- name: MaxSeq :one
SELECT CAST(max(coalesce((SELECT max(seq) FROM agent_data_buffer), 0),
                coalesce((SELECT max(seq) FROM device_data_buffer), 0)) AS INTEGER) AS max_seq;

-- name: SetNextSeq :exec
UPDATE gateway_state SET value = CAST(sqlc.arg(next_seq) AS TEXT) WHERE key = 'next_seq';

-- name: OldestAgent :one
SELECT created_at FROM agent_data_buffer ORDER BY id LIMIT 1;

-- name: OldestDevice :one
SELECT created_at FROM device_data_buffer ORDER BY id LIMIT 1;

-- name: EventExists :one
SELECT 1 FROM agent_data_buffer WHERE event_id = ?;

-- name: ScreenshotIDs :many
SELECT event_id FROM agent_data_buffer WHERE class = 'screenshot';

-- SalvageAgentClasses counts, best effort, the agent rows per class of a
-- corrupt file (see Buffer.salvage).
-- name: SalvageAgentClasses :many
SELECT class, count(*) AS event_count FROM agent_data_buffer GROUP BY class;

-- SalvageDeviceClasses counts the device rows per class of a corrupt file.
-- name: SalvageDeviceClasses :many
SELECT class, count(*) AS event_count FROM device_data_buffer GROUP BY class;
