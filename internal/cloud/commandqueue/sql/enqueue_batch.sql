-- name: EnqueueBatch :many
-- The group commit's one statement: several commands, each for its own
-- gateway (a gateway may appear more than once), with their ids chosen by
-- the caller (UUIDv7 in arrival order, so that two commands of one gateway
-- created in the same transaction keep that order in the claims). Only
-- gateways visible to the tenant (RLS) and not revoked get their command;
-- the caller answers the missing ids ErrNotFound. Payloads are JSON text,
-- TTLs milliseconds, an empty trace parent none. The NOTIFY trigger fires
-- once per statement (00044), one notification per gateway.
INSERT INTO gateway_commands (id, organization_id, gateway_id, type, payload, priority, max_attempts, expires_at, created_by, trace_parent)
SELECT c.id, g.organization_id, g.id, c.type, c.payload::jsonb, c.priority, c.max_attempts,
       now() + c.ttl_ms * interval '1 millisecond', c.created_by, nullif(c.trace_parent, '')
  FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@gateway_ids::uuid[]) AS gateway_id, unnest(@types::text[]) AS type,
               unnest(@payloads::text[]) AS payload, unnest(@priorities::integer[]) AS priority,
               unnest(@max_attempts::integer[]) AS max_attempts, unnest(@ttl_ms::bigint[]) AS ttl_ms,
               unnest(@created_bys::text[]) AS created_by, unnest(@trace_parents::text[]) AS trace_parent) c
  JOIN gateway_instances g ON g.id = c.gateway_id AND g.revoked_at IS NULL
RETURNING id, created_at, expires_at;
