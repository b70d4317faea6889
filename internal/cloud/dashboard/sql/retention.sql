-- Retention policies (policies.go): the platform defaults
-- (no organisation) and the organisation's own rules, read by managers
-- and changed by the organisation's administrator.

-- name: ListRetentionPolicies :many
-- One page of the retention rules the caller sees, by id.
SELECT id, organization_id, resource_type, retention_days, action, is_active, created_at, row_version, updated_at
  FROM retention_policies
 WHERE (sqlc.narg(after_id)::uuid IS NULL OR id > sqlc.narg(after_id)::uuid)
 ORDER BY id LIMIT @max_rows;

-- name: GetRetentionPolicy :one
SELECT id, organization_id, resource_type, retention_days, action, is_active, created_at, row_version, updated_at
  FROM retention_policies WHERE id = $1;

-- name: LockRetentionPolicy :one
-- A rule the caller may change (row-level security's write policy hides a
-- platform default from an organisation's administrator), locked.
SELECT id, organization_id, resource_type, retention_days, action, is_active, created_at, row_version, updated_at
  FROM retention_policies WHERE id = $1 FOR UPDATE;

-- name: UpdateRetentionPolicy :one
-- The rule as updated, with the version the database moved on (00023).
UPDATE retention_policies SET retention_days = @retention_days, action = @action, is_active = @is_active WHERE id = @id
RETURNING id, organization_id, resource_type, retention_days, action, is_active, created_at, row_version, updated_at;

-- name: AuditRetentionChange :exec
-- The audit row of a changed rule: app.audit() stamps organisation, user
-- and actor from the verified tenant context.
SELECT app.audit(sqlc.narg(organization_id)::bigint, 'update', 'retention_policy', @resource_id::text, 'allowed', @details::jsonb);
