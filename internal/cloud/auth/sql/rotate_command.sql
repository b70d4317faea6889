-- name: RotateCommandStatus :one
-- The rotate_api_key command a rotation is for: it must be the gateway's
-- own (row-level security hides other organisations' commands).
SELECT status FROM gateway_commands
 WHERE id = @id AND gateway_id = @gateway_id AND type = 'rotate_api_key';
