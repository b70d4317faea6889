-- name: ReceivedMany :many
-- Received's phase one for several commands (each of its own gateway) in
-- one statement; the ids it changed are returned, the others are answered
-- one by one as Received answers them. The caller passes each command once.
UPDATE gateway_commands c
   SET received_at = coalesce(c.received_at, now()), ack_deadline = now() + @exec_timeout::interval
  FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@gateway_ids::uuid[]) AS gateway_id) a
 WHERE c.id = a.id AND c.gateway_id = a.gateway_id AND c.status = 'delivered'
RETURNING c.id;
