-- The lists of departments, one statement per sort order, keyset
-- pagination on (sort key, id) as for employees (employee_lists.sql).

-- name: ListDepartmentsByName :many
SELECT d.* FROM departments d
WHERE (NOT @by_parent::boolean OR d.parent_id IS NOT DISTINCT FROM sqlc.narg(parent_id)::bigint)
  AND (@pattern::text = '' OR d.name ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR (d.name, d.id) > (@after_text::text, @after_id::bigint))
ORDER BY d.name, d.id
LIMIT @row_limit::integer;

-- name: ListDepartmentsByNameDesc :many
SELECT d.* FROM departments d
WHERE (NOT @by_parent::boolean OR d.parent_id IS NOT DISTINCT FROM sqlc.narg(parent_id)::bigint)
  AND (@pattern::text = '' OR d.name ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR (d.name, d.id) < (@after_text::text, @after_id::bigint))
ORDER BY d.name DESC, d.id DESC
LIMIT @row_limit::integer;

-- name: ListDepartmentsByCreatedAt :many
SELECT d.* FROM departments d
WHERE (NOT @by_parent::boolean OR d.parent_id IS NOT DISTINCT FROM sqlc.narg(parent_id)::bigint)
  AND (@pattern::text = '' OR d.name ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR (d.created_at, d.id) > (@after_time::timestamptz, @after_id::bigint))
ORDER BY d.created_at, d.id
LIMIT @row_limit::integer;

-- name: ListDepartmentsByCreatedAtDesc :many
SELECT d.* FROM departments d
WHERE (NOT @by_parent::boolean OR d.parent_id IS NOT DISTINCT FROM sqlc.narg(parent_id)::bigint)
  AND (@pattern::text = '' OR d.name ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR (d.created_at, d.id) < (@after_time::timestamptz, @after_id::bigint))
ORDER BY d.created_at DESC, d.id DESC
LIMIT @row_limit::integer;

-- name: ListDepartmentsByID :many
SELECT d.* FROM departments d
WHERE (NOT @by_parent::boolean OR d.parent_id IS NOT DISTINCT FROM sqlc.narg(parent_id)::bigint)
  AND (@pattern::text = '' OR d.name ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR d.id > @after_id::bigint)
ORDER BY d.id
LIMIT @row_limit::integer;

-- name: ListDepartmentsByIDDesc :many
SELECT d.* FROM departments d
WHERE (NOT @by_parent::boolean OR d.parent_id IS NOT DISTINCT FROM sqlc.narg(parent_id)::bigint)
  AND (@pattern::text = '' OR d.name ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR d.id < @after_id::bigint)
ORDER BY d.id DESC
LIMIT @row_limit::integer;
