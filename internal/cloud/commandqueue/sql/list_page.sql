-- name: ListPage :many
-- One page of a gateway's commands, newest first, after a keyset cursor
-- (the created_at and id of the previous page's last command), optionally
-- of one status. Another organisation's gateway has no visible rows.
SELECT id, gateway_id, type, payload, priority, status, attempts, max_attempts, expires_at, created_at,
       delivered_at, received_at, completed_at, result, error
FROM gateway_commands
WHERE gateway_id = @gateway_id
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(before_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(before_at)::timestamptz, sqlc.narg(before_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT @max_rows;
