-- The key state of one gateway (tenant-scoped), locked for a rotation step.
-- $1 gateway id, $2 SHA-256 of the key the request was made with.
SELECT api_key_hash = $2, coalesce(api_key_prefix, ''), key_command_id, key_rotated_at,
       pending_key_hash IS NOT NULL
  FROM gateway_instances
 WHERE id = $1 AND revoked_at IS NULL
   FOR UPDATE
