-- Organisations, users, gateway registration and the audit (accounts.go).

-- name: CreateOrganization :one
INSERT INTO organizations (name, slug) VALUES ($1, $2) RETURNING id, name, slug, created_at, row_version;

-- name: OrganizationBySlug :one
SELECT id, name, slug, created_at, row_version FROM organizations WHERE slug = $1;

-- name: OrganizationByID :one
SELECT id, name, slug, created_at, row_version FROM organizations WHERE id = $1;

-- name: ListOrganizations :many
SELECT id, name, slug, created_at, row_version FROM organizations ORDER BY id;

-- name: CreateUser :one
INSERT INTO users (organization_id, email, password_hash, role, department_id, employee_id)
VALUES (sqlc.narg(organization_id), @email, @password_hash, @role, sqlc.narg(department_id), sqlc.narg(employee_id)) RETURNING id;

-- name: CreateGateway :one
INSERT INTO gateway_instances (organization_id, serial, name) VALUES ($1, $2, $3) RETURNING id;

-- name: CreateProvisioningToken :exec
INSERT INTO provisioning_tokens (organization_id, gateway_id, token_hash, expires_at, created_by)
VALUES ($1, $2, $3, $4, $5);

-- name: OrganizationExists :one
SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1);

-- name: GatewayInOrganization :one
-- Whether the gateway belongs to the organisation (named explicitly: an
-- ADMIN context sees every organisation's rows).
SELECT EXISTS (SELECT 1 FROM gateway_instances WHERE id = $1 AND organization_id = $2);

-- name: Audit :exec
-- An audit row through app.audit(), which stamps organisation, user and
-- actor from the verified tenant context.
SELECT app.audit(sqlc.narg(organization_id)::bigint, @action::text, @resource::text, @resource_id::text, 'allowed', @details::jsonb);

-- name: SetPassword :one
-- An administrator sets a user's password (row-level security: a user the
-- actor can see).
UPDATE users SET password_hash = @password_hash, updated_at = now() WHERE email = @email
RETURNING id, organization_id, email, role;

-- name: EndUserSessions :one
-- Every session of the user ends (00025): -1 when the actor may not.
SELECT app.user_sessions_end(@user_id)::int;

-- name: GetUser :one
SELECT id, organization_id, email, role, department_id, employee_id, is_active, last_login_at, created_at, updated_at
  FROM users WHERE id = $1;

-- name: LockUser :one
SELECT id, organization_id, email, role, department_id, employee_id, is_active, last_login_at, created_at, updated_at
  FROM users WHERE id = $1 FOR UPDATE;

-- name: ListUsers :many
-- One page of the users the actor sees, by id, optionally of one role
-- and active or not.
SELECT id, organization_id, email, role, department_id, employee_id, is_active, last_login_at, created_at, updated_at
  FROM users
 WHERE id > @after_id
   AND (sqlc.narg(role)::text IS NULL OR role = sqlc.narg(role)::text)
   AND (sqlc.narg(is_active)::boolean IS NULL OR is_active = sqlc.narg(is_active)::boolean)
 ORDER BY id LIMIT @max_rows;

-- name: UpdateUser :one
UPDATE users SET role = @role, department_id = sqlc.narg(department_id), employee_id = sqlc.narg(employee_id),
       is_active = @is_active, updated_at = clock_timestamp()
 WHERE id = @id RETURNING updated_at;

-- name: RenameOrganization :one
-- The organisation renamed when it is still at the version the caller
-- read (no row: not visible, or another version; the caller tells which).
UPDATE organizations SET name = @name WHERE id = @id AND row_version = @row_version
RETURNING id, name, slug, created_at, row_version;
