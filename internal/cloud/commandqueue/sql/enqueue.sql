-- name: Enqueue :one
INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, priority, max_attempts, expires_at, created_by, trace_parent)
VALUES (@organization_id, @gateway_id, @type, @payload, @priority, @max_attempts, now() + @ttl::interval, @created_by, sqlc.narg(trace_parent)::text)
RETURNING id, created_at, expires_at;
