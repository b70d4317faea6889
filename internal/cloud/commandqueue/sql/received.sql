-- Phase one of the acknowledgement: the gateway has the command. The
-- deadline now bounds its execution.
UPDATE gateway_commands
   SET received_at = coalesce(received_at, now()), ack_deadline = now() + $3::interval
 WHERE id = $1 AND gateway_id = $2 AND status = 'delivered'
RETURNING id
