-- The lists of employees, one statement per sort order (sqlc cannot
-- choose an ORDER BY at run time): keyset pagination on (sort key, id),
-- never OFFSET, so that rows inserted or deleted before the cursor neither
-- repeat nor hide rows on the next page. All share one shape:
-- edit all of them alike. Row-level security does the tenant's filtering.

-- name: ListEmployeesByLastName :many
SELECT e.* FROM employees e
WHERE (NOT @by_department::boolean OR e.department_id = ANY (@department_ids::bigint[]))
  AND (@status::text = '' OR e.status = @status::text)
  AND (@pattern::text = '' OR e.employee_number ILIKE @pattern::text OR e.email ILIKE @pattern::text
       OR (e.first_name || ' ' || e.last_name) ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR (e.last_name, e.id) > (@after_text::text, @after_id::bigint))
ORDER BY e.last_name, e.id
LIMIT @row_limit::integer;

-- name: ListEmployeesByLastNameDesc :many
SELECT e.* FROM employees e
WHERE (NOT @by_department::boolean OR e.department_id = ANY (@department_ids::bigint[]))
  AND (@status::text = '' OR e.status = @status::text)
  AND (@pattern::text = '' OR e.employee_number ILIKE @pattern::text OR e.email ILIKE @pattern::text
       OR (e.first_name || ' ' || e.last_name) ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR (e.last_name, e.id) < (@after_text::text, @after_id::bigint))
ORDER BY e.last_name DESC, e.id DESC
LIMIT @row_limit::integer;

-- name: ListEmployeesByEmployeeNumber :many
SELECT e.* FROM employees e
WHERE (NOT @by_department::boolean OR e.department_id = ANY (@department_ids::bigint[]))
  AND (@status::text = '' OR e.status = @status::text)
  AND (@pattern::text = '' OR e.employee_number ILIKE @pattern::text OR e.email ILIKE @pattern::text
       OR (e.first_name || ' ' || e.last_name) ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR (e.employee_number, e.id) > (@after_text::text, @after_id::bigint))
ORDER BY e.employee_number, e.id
LIMIT @row_limit::integer;

-- name: ListEmployeesByEmployeeNumberDesc :many
SELECT e.* FROM employees e
WHERE (NOT @by_department::boolean OR e.department_id = ANY (@department_ids::bigint[]))
  AND (@status::text = '' OR e.status = @status::text)
  AND (@pattern::text = '' OR e.employee_number ILIKE @pattern::text OR e.email ILIKE @pattern::text
       OR (e.first_name || ' ' || e.last_name) ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR (e.employee_number, e.id) < (@after_text::text, @after_id::bigint))
ORDER BY e.employee_number DESC, e.id DESC
LIMIT @row_limit::integer;

-- name: ListEmployeesByCreatedAt :many
SELECT e.* FROM employees e
WHERE (NOT @by_department::boolean OR e.department_id = ANY (@department_ids::bigint[]))
  AND (@status::text = '' OR e.status = @status::text)
  AND (@pattern::text = '' OR e.employee_number ILIKE @pattern::text OR e.email ILIKE @pattern::text
       OR (e.first_name || ' ' || e.last_name) ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR (e.created_at, e.id) > (@after_time::timestamptz, @after_id::bigint))
ORDER BY e.created_at, e.id
LIMIT @row_limit::integer;

-- name: ListEmployeesByCreatedAtDesc :many
SELECT e.* FROM employees e
WHERE (NOT @by_department::boolean OR e.department_id = ANY (@department_ids::bigint[]))
  AND (@status::text = '' OR e.status = @status::text)
  AND (@pattern::text = '' OR e.employee_number ILIKE @pattern::text OR e.email ILIKE @pattern::text
       OR (e.first_name || ' ' || e.last_name) ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR (e.created_at, e.id) < (@after_time::timestamptz, @after_id::bigint))
ORDER BY e.created_at DESC, e.id DESC
LIMIT @row_limit::integer;

-- name: ListEmployeesByID :many
SELECT e.* FROM employees e
WHERE (NOT @by_department::boolean OR e.department_id = ANY (@department_ids::bigint[]))
  AND (@status::text = '' OR e.status = @status::text)
  AND (@pattern::text = '' OR e.employee_number ILIKE @pattern::text OR e.email ILIKE @pattern::text
       OR (e.first_name || ' ' || e.last_name) ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR e.id > @after_id::bigint)
ORDER BY e.id
LIMIT @row_limit::integer;

-- name: ListEmployeesByIDDesc :many
SELECT e.* FROM employees e
WHERE (NOT @by_department::boolean OR e.department_id = ANY (@department_ids::bigint[]))
  AND (@status::text = '' OR e.status = @status::text)
  AND (@pattern::text = '' OR e.employee_number ILIKE @pattern::text OR e.email ILIKE @pattern::text
       OR (e.first_name || ' ' || e.last_name) ILIKE @pattern::text)
  AND (NOT @has_cursor::boolean OR e.id < @after_id::bigint)
ORDER BY e.id DESC
LIMIT @row_limit::integer;
