-- name: Claim :many
-- Claim the gateway's due commands, highest priority first, skipping rows
-- another replica is claiming at this moment.
WITH due AS (
    SELECT g.id FROM gateway_commands g
    WHERE g.gateway_id = @gateway_id AND g.status = 'pending' AND g.next_attempt_at <= now() AND g.expires_at > now()
    ORDER BY g.priority DESC, g.created_at, g.id
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
)
UPDATE gateway_commands c
   SET status = 'delivered', attempts = c.attempts + 1, delivered_at = now(),
       ack_deadline = now() + @ack_timeout::interval
  FROM due
 WHERE c.id = due.id
RETURNING c.id, c.type, c.payload, c.priority, c.attempts, c.max_attempts, c.expires_at, c.created_at, c.trace_parent;
