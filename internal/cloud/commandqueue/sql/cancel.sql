-- name: Cancel :one
UPDATE gateway_commands SET status = 'cancelled', completed_at = now()
 WHERE id = $1 AND status IN ('pending', 'delivered')
RETURNING id;
