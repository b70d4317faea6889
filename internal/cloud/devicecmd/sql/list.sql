-- name: List :many
-- One page of a device's commands, newest first, after a keyset cursor
-- (the created_at and id of the previous page's last row).
SELECT id, organization_id, device_id, gateway_id, gateway_command_id, adapter_type, command_type, payload, status,
       response, error, created_by, created_at, delivered_at, completed_at, expires_at
FROM device_commands
WHERE device_id = @device_id
  AND (sqlc.narg(before_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(before_at)::timestamptz, sqlc.narg(before_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT @max_rows;
