-- name: ClaimMany :many
-- Claim the due commands of several gateways in one statement (the control
-- hub's batched claim for the gateways woken at once): up to max_rows per
-- gateway, highest priority first, skipping rows another replica is
-- claiming at this moment. The caller passes each gateway once.
WITH due AS (
    SELECT d.id FROM unnest(@gateway_ids::uuid[]) AS w(gateway_id)
    CROSS JOIN LATERAL (
        SELECT g.id FROM gateway_commands g
        WHERE g.gateway_id = w.gateway_id AND g.status = 'pending' AND g.next_attempt_at <= now() AND g.expires_at > now()
        ORDER BY g.priority DESC, g.created_at, g.id
        LIMIT @max_rows
        FOR UPDATE SKIP LOCKED
    ) d
)
UPDATE gateway_commands c
   SET status = 'delivered', attempts = c.attempts + 1, delivered_at = now(),
       ack_deadline = now() + @ack_timeout::interval
  FROM due
 WHERE c.id = due.id
RETURNING c.id, c.gateway_id, c.type, c.payload, c.priority, c.attempts, c.max_attempts, c.expires_at, c.created_at, c.trace_parent;
