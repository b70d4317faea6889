-- Phase two: completed or failed, with the gateway's result. A repeated
-- acknowledgement of a finished command changes nothing.
UPDATE gateway_commands
   SET status = $3, result = $4, error = $5, completed_at = now(), ack_at = now(), received_at = coalesce(received_at, now()),
       ack_deadline = NULL
 WHERE id = $1 AND gateway_id = $2 AND status IN ('delivered', 'pending')
RETURNING id
