-- name: Received :one
-- Phase one of the acknowledgement: the gateway has the command. The
-- deadline now bounds its execution.
UPDATE gateway_commands
   SET received_at = coalesce(received_at, now()), ack_deadline = now() + @exec_timeout::interval
 WHERE id = @id AND gateway_id = @gateway_id AND status = 'delivered'
RETURNING id;
