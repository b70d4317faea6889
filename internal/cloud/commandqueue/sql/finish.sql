-- name: Finish :one
-- Phase two: completed or failed, with the gateway's result. A repeated
-- acknowledgement of a finished command changes nothing.
UPDATE gateway_commands
   SET status = @status, result = @result, error = @error, completed_at = now(), ack_at = now(), received_at = coalesce(received_at, now()),
       ack_deadline = NULL
 WHERE id = @id AND gateway_id = @gateway_id AND status IN ('delivered', 'pending')
RETURNING id;
