-- name: SetPending :one
-- Issue (or replace) the gateway's pending key. Only its hash is stored.
-- command_id is the rotate_api_key command, or NULL.
UPDATE gateway_instances
   SET pending_key_hash = @hash, pending_key_prefix = @prefix, pending_key_expires_at = now() + @overlap::interval,
       pending_command_id = sqlc.narg(command_id), updated_at = now()
 WHERE id = @id AND revoked_at IS NULL
RETURNING pending_key_expires_at;
