-- name: Outcome :one
-- The recorded outcome of a command, if it ran.
SELECT ok, result, error FROM executed_commands WHERE id = ?;

-- name: Record :exec
-- Records a command's outcome (executed_at: RFC 3339, UTC).
INSERT INTO executed_commands (id, type, ok, result, error, executed_at) VALUES (?, ?, ?, ?, ?, ?);

-- name: Count :one
-- How many rows hold a command id (0 or 1).
SELECT count(*) FROM executed_commands WHERE id = ?;
