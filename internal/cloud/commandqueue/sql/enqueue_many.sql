-- name: EnqueueMany :many
-- One command for each of several gateways in one statement: only gateways
-- visible to the tenant (RLS) and not revoked get one; the caller compares
-- the count. The NOTIFY trigger fires per row, one per gateway, as Enqueue.
INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, priority, max_attempts, expires_at, created_by, trace_parent)
SELECT g.organization_id, g.id, @type::text, @payload::jsonb, @priority::integer, @max_attempts::integer,
       now() + @ttl::interval, sqlc.narg(created_by)::text, sqlc.narg(trace_parent)::text
  FROM gateway_instances g
 WHERE g.id = ANY(@gateway_ids::uuid[]) AND g.revoked_at IS NULL
RETURNING id, gateway_id, created_at, expires_at;
