-- Policies, their released versions and their audit (policy.go).

-- name: CreatePolicy :one
INSERT INTO policies (organization_id, name, content, created_by) VALUES ($1, $2, $3, $4) RETURNING id;

-- name: GetPolicy :one
SELECT id, organization_id, name, content, current_version, created_at, updated_at FROM policies WHERE id = $1;

-- name: LockPolicyContent :one
-- The draft content and when it last changed (the policy's version),
-- locked for an update.
SELECT content, updated_at FROM policies WHERE id = $1 FOR UPDATE;

-- name: UpdatePolicyContent :exec
UPDATE policies SET content = @content, updated_at = clock_timestamp() WHERE id = @id;

-- name: LockPolicyForRelease :one
SELECT organization_id, content, current_version FROM policies WHERE id = $1 FOR UPDATE;

-- name: VersionContent :one
SELECT content FROM policy_versions WHERE policy_id = $1 AND version = $2;

-- name: InsertVersion :one
INSERT INTO policy_versions (organization_id, policy_id, version, content, checksum, requires_restart, released_by)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, released_at;

-- name: SetCurrentVersion :exec
UPDATE policies SET current_version = @version, content = @content, updated_at = clock_timestamp() WHERE id = @id;

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

-- name: ListPolicies :many
-- One page of the policies the actor sees, by id.
SELECT id, organization_id, name, content, current_version, created_at, updated_at
  FROM policies WHERE id > @after_id ORDER BY id LIMIT @max_rows;

-- name: ListVersions :many
-- One page of a policy's released versions, newest first, after the
-- (released_at, id) of the previous page's last.
SELECT id, policy_id, version, content, checksum, requires_restart, released_at, released_by
  FROM policy_versions
 WHERE policy_id = @policy_id
   AND (sqlc.narg(after_released_at)::timestamptz IS NULL
        OR (released_at, id) < (sqlc.narg(after_released_at)::timestamptz, sqlc.narg(after_id)::uuid))
 ORDER BY released_at DESC, id DESC LIMIT @max_rows;
