-- Policies, their released versions and their audit (policy.go).

-- name: CreatePolicy :one
INSERT INTO policies (organization_id, name, content, created_by) VALUES ($1, $2, $3, $4) RETURNING id;

-- name: GetPolicy :one
SELECT id, organization_id, name, content, current_version FROM policies WHERE id = $1;

-- name: LockPolicyContent :one
-- The draft content, locked for an update.
SELECT content FROM policies WHERE id = $1 FOR UPDATE;

-- name: UpdatePolicyContent :exec
UPDATE policies SET content = @content, updated_at = now() WHERE id = @id;

-- name: LockPolicyForRelease :one
SELECT organization_id, content, current_version FROM policies WHERE id = $1 FOR UPDATE;

-- name: VersionContent :one
SELECT content FROM policy_versions WHERE policy_id = $1 AND version = $2;

-- name: InsertVersion :one
INSERT INTO policy_versions (organization_id, policy_id, version, content, checksum, requires_restart, released_by)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, released_at;

-- name: SetCurrentVersion :exec
UPDATE policies SET current_version = @version, content = @content, updated_at = now() WHERE id = @id;

-- name: GetVersion :one
SELECT id, policy_id, version, content, checksum, requires_restart, released_at, released_by
FROM policy_versions WHERE policy_id = $1 AND version = $2;

-- name: InsertChange :exec
-- An audit row of a policy change, in the policy's organisation.
INSERT INTO policy_changes (organization_id, policy_id, version_id, changed_by, changeset, change_type)
SELECT p.organization_id, p.id, sqlc.narg(version_id)::uuid, sqlc.narg(changed_by)::bigint, @changeset::jsonb, @change_type::text
  FROM policies p WHERE p.id = @policy_id;

-- name: ReleasedDocument :one
-- A released version of a policy, the current one when version is ''.
SELECT v.policy_id, v.version, v.checksum, v.requires_restart, v.content
  FROM policy_versions v JOIN policies p ON p.id = v.policy_id
 WHERE v.policy_id = @policy_id AND (v.version = @version::text OR (@version::text = '' AND v.version = p.current_version));
