-- name: GetState :one
SELECT value FROM gateway_state WHERE key = ?;

-- name: SetState :exec
INSERT INTO gateway_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value;
