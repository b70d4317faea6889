-- The tenant context and its keys (tenantctx.go), and the bootstrap's lock
-- (migrate.go).

-- name: SetTenant :exec
-- The signed tenant context, transaction-locally ('' sets none).
SELECT set_config('app.tenant', @value::text, true);

-- name: InstallContextKey :exec
INSERT INTO app.context_keys (id, inner_pad, outer_pad) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET inner_pad = excluded.inner_pad, outer_pad = excluded.outer_pad, created_at = now();

-- name: RetireContextKey :execrows
DELETE FROM app.context_keys WHERE id = $1;

-- name: CurrentContextKey :one
SELECT id, inner_pad FROM app.context_keys ORDER BY created_at DESC, id LIMIT 1;

-- name: BootstrapLock :exec
-- Role creation is cluster-wide: concurrent bootstraps take turns.
SELECT pg_advisory_lock(7428001);
