-- Start-up checks of a service's database connection (service.go).

-- name: RuntimeRole :one
-- The role connected, and whether it would bypass row-level security.
SELECT current_user::text AS user_name, (rolsuper OR rolbypassrls)::boolean AS bypass
  FROM pg_catalog.pg_roles WHERE rolname = current_user;

-- name: ContextVerified :one
-- Whether the database verified the transaction's signed tenant context.
SELECT (app.app_role() IS NOT NULL)::boolean AS verified;
