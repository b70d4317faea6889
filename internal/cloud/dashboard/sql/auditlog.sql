-- The audit log, read-only (auditlog.go).

-- name: ListAuditLog :many
-- One page of the audit rows the caller sees, newest first, after the
-- (created_at, id) of the previous page's last; every filter optional.
SELECT id, organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, details, created_at
  FROM audit_log
 WHERE (sqlc.narg(action)::text IS NULL OR action = sqlc.narg(action)::text)
   AND (sqlc.narg(resource_type)::text IS NULL OR resource_type = sqlc.narg(resource_type)::text)
   AND (sqlc.narg(resource_id)::text IS NULL OR resource_id = sqlc.narg(resource_id)::text)
   AND (sqlc.narg(outcome)::text IS NULL OR outcome = sqlc.narg(outcome)::text)
   AND (sqlc.narg(actor_user_id)::bigint IS NULL OR actor_user_id = sqlc.narg(actor_user_id)::bigint)
   AND (sqlc.narg(from_time)::timestamptz IS NULL OR created_at >= sqlc.narg(from_time)::timestamptz)
   AND (sqlc.narg(to_time)::timestamptz IS NULL OR created_at < sqlc.narg(to_time)::timestamptz)
   AND (sqlc.narg(after_created_at)::timestamptz IS NULL
        OR (created_at, id) < (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::bigint))
 ORDER BY created_at DESC, id DESC LIMIT @max_rows;
