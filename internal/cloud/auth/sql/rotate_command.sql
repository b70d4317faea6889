-- The rotate_api_key command a rotation is for: it must be the gateway's
-- own (row-level security hides other organisations' commands).
-- $1 command id, $2 gateway id.
SELECT status FROM gateway_commands
 WHERE id = $1 AND gateway_id = $2 AND type = 'rotate_api_key'
