-- name: KeyState :one
-- The key state of one gateway (tenant-scoped), locked for a rotation step:
-- whether the presented key (its SHA-256) is the current one.
SELECT (api_key_hash = @presented_hash)::boolean AS current, coalesce(api_key_prefix, '')::text AS prefix,
       key_command_id, key_rotated_at, (pending_key_hash IS NOT NULL)::boolean AS pending
  FROM gateway_instances
 WHERE id = @id AND revoked_at IS NULL
   FOR UPDATE;
