-- name: Get :one
SELECT id, gateway_id, type, payload, priority, status, attempts, max_attempts, expires_at, created_at,
       delivered_at, received_at, completed_at, result, error
FROM gateway_commands WHERE id = $1;
