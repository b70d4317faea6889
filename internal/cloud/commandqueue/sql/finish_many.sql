-- name: FinishMany :many
-- Finish's phase two for several commands (each of its own gateway) in one
-- statement: completed or failed, with each gateway's result (empty for none)
-- and error (empty for none). The ids it changed are returned, the others are
-- answered one by one as Finish answers them. The caller passes each
-- command once.
UPDATE gateway_commands c
   SET status = a.status, result = nullif(a.result, '')::jsonb, error = nullif(a.error, ''), completed_at = now(), ack_at = now(),
       received_at = coalesce(c.received_at, now()), ack_deadline = NULL
  FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@gateway_ids::uuid[]) AS gateway_id, unnest(@statuses::text[]) AS status,
               unnest(@results::text[]) AS result, unnest(@errors::text[]) AS error) a
 WHERE c.id = a.id AND c.gateway_id = a.gateway_id AND c.status IN ('delivered', 'pending')
RETURNING c.id;
