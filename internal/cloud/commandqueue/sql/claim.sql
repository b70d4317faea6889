-- Claim the gateway's due commands, highest priority first, skipping rows
-- another replica is claiming at this moment.
WITH due AS (
    SELECT id FROM gateway_commands
    WHERE gateway_id = $1 AND status = 'pending' AND next_attempt_at <= now() AND expires_at > now()
    ORDER BY priority DESC, created_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE gateway_commands c
   SET status = 'delivered', attempts = c.attempts + 1, delivered_at = now(),
       ack_deadline = now() + $3::interval
  FROM due
 WHERE c.id = due.id
RETURNING c.id, c.type, c.payload, c.priority, c.attempts, c.max_attempts, c.expires_at, c.created_at
