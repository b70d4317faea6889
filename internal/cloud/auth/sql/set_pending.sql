-- Issue (or replace) the gateway's pending key. Only its hash is stored.
-- $1 gateway id, $2 hash, $3 prefix, $4 overlap, $5 command id or NULL.
UPDATE gateway_instances
   SET pending_key_hash = $2, pending_key_prefix = $3, pending_key_expires_at = now() + $4::interval,
       pending_command_id = $5, updated_at = now()
 WHERE id = $1 AND revoked_at IS NULL
RETURNING pending_key_expires_at
