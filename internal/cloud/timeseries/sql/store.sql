-- What a database's time series are (store.go; staffctl up reports it).

-- name: StoreFacts :one
-- The storage kind, the TimescaleDB extension's version ('' when not
-- created), whether the server has the package, and whether the role may
-- read shared_preload_libraries (it needs a superuser or
-- pg_read_all_settings, and missing_ok does not cover a permission error)
-- with the setting when it may ('' otherwise).
SELECT monitoring.storage_kind()::text AS kind,
       coalesce((SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'timescaledb'), '')::text AS version,
       EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'timescaledb') AS available,
       pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') AS may_read_settings,
       (CASE WHEN pg_has_role(current_user, 'pg_read_all_settings', 'USAGE')
             THEN current_setting('shared_preload_libraries') ELSE '' END)::text AS preload;

-- name: CurrentUser :one
SELECT current_user::text AS user_name;

-- name: TenantView :one
-- Whether the database verified the transaction's tenant context, its
-- organisation (0 when not), and the storage kind, as the connected role
-- sees them.
SELECT (app.org_id() IS NOT NULL)::boolean AS verified, coalesce(app.org_id(), 0)::bigint AS organization_id,
       monitoring.storage_kind()::text AS kind;
