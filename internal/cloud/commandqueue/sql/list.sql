-- name: List :many
-- The most recent commands, newest first, of one gateway or (NULL) all.
SELECT id, gateway_id, type, payload, priority, status, attempts, max_attempts, expires_at, created_at,
       delivered_at, received_at, completed_at, result, error
FROM gateway_commands WHERE (sqlc.narg(gateway_id)::uuid IS NULL OR gateway_id = sqlc.narg(gateway_id)) ORDER BY created_at DESC LIMIT @max_rows;
