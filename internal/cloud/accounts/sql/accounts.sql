-- Organisations, users, gateway registration and the audit (accounts.go).

-- name: CreateOrganization :one
INSERT INTO organizations (name, slug) VALUES ($1, $2) RETURNING id, name, slug, created_at;

-- name: OrganizationBySlug :one
SELECT id, name, slug, created_at FROM organizations WHERE slug = $1;

-- name: OrganizationByID :one
SELECT id, name, slug, created_at FROM organizations WHERE id = $1;

-- name: ListOrganizations :many
SELECT id, name, slug, created_at FROM organizations ORDER BY id;

-- name: CreateUser :one
INSERT INTO users (organization_id, email, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING id;

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
