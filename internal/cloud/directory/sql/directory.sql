-- Departments, employees and their identities (directory.go). Every
-- statement runs in the caller's tenant context: row-level security hides
-- other organisations' rows (and, for scoped roles, rows out of scope), so
-- "no row" means "not found or not visible" alike.

-- name: DepartmentByID :one
SELECT d.* FROM departments d WHERE d.id = @id;

-- name: DepartmentForUpdate :one
-- The department, locked until the transaction ends (its version is
-- checked before it is changed).
SELECT d.* FROM departments d WHERE d.id = @id FOR UPDATE;

-- name: DepartmentInOrganization :one
-- Whether the department exists, is visible and belongs to the
-- organisation (named explicitly: an ADMIN context sees every one).
SELECT EXISTS (SELECT 1 FROM departments WHERE id = @id AND organization_id = @organization_id);

-- name: DepartmentSubtree :many
-- The department and all its descendants (visible ones).
WITH RECURSIVE sub AS (
    SELECT d.id, 0 AS depth FROM departments d WHERE d.id = @id
    UNION
    SELECT c.id, s.depth + 1 FROM departments c JOIN sub s ON c.parent_id = s.id WHERE s.depth < 100
)
SELECT id FROM sub;

-- name: LockDepartmentTree :exec
-- Serialises the moves of one organisation's departments (a move checks
-- for cycles against a tree another move must not change meanwhile). NO
-- KEY UPDATE does not block the foreign-key checks of inserts; id order
-- makes two moves queue instead of deadlocking.
SELECT d.id FROM departments d WHERE d.organization_id = @organization_id ORDER BY d.id FOR NO KEY UPDATE;

-- name: AllDepartments :many
-- Every visible department, for the tree.
SELECT d.* FROM departments d ORDER BY d.name, d.id LIMIT @row_limit::integer;

-- name: DepartmentDependents :one
-- What keeps a department from being deleted: its sub-departments and
-- employees (all of them, visible or not to a narrowed role: counted as
-- the caller sees them, the foreign keys catch the rest).
SELECT (SELECT count(*) FROM departments c WHERE c.parent_id = @id::bigint)::bigint AS children,
       (SELECT count(*) FROM employees e WHERE e.department_id = @id::bigint)::bigint AS employees;

-- name: CreateDepartment :one
INSERT INTO departments (organization_id, parent_id, name) VALUES (@organization_id, sqlc.narg(parent_id), @name)
RETURNING *;

-- name: UpdateDepartment :one
-- The version moves on in the trigger app.bump_version().
UPDATE departments SET parent_id = sqlc.narg(parent_id), name = @name WHERE id = @id RETURNING *;

-- name: DeleteDepartment :execrows
DELETE FROM departments WHERE id = @id;

-- name: EmployeeByID :one
SELECT e.* FROM employees e WHERE e.id = @id;

-- name: EmployeeForUpdate :one
SELECT e.* FROM employees e WHERE e.id = @id FOR UPDATE;

-- name: CreateEmployee :one
INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name, email, "position", status)
VALUES (@organization_id, sqlc.narg(department_id), @employee_number, @first_name, @last_name, sqlc.narg(email),
        sqlc.narg(position), @status)
RETURNING *;

-- name: UpdateEmployee :one
UPDATE employees SET department_id = sqlc.narg(department_id), employee_number = @employee_number,
    first_name = @first_name, last_name = @last_name, email = sqlc.narg(email), "position" = sqlc.narg(position),
    status = @status
WHERE id = @id RETURNING *;

-- name: DeleteEmployee :execrows
DELETE FROM employees WHERE id = @id;

-- name: IdentitiesOf :many
-- The identities of the employees, in the order they were added.
SELECT i.id, i.employee_id, i.kind, i.value FROM employee_identities i
WHERE i.employee_id = ANY (@employee_ids::bigint[]) ORDER BY i.employee_id, i.id;

-- name: DeleteIdentities :exec
DELETE FROM employee_identities WHERE employee_id = @employee_id;

-- name: InsertIdentity :one
INSERT INTO employee_identities (organization_id, employee_id, kind, value)
VALUES (@organization_id, @employee_id, @kind, @value) RETURNING id;

-- name: Audit :exec
-- An audit row through app.audit(), which stamps user and actor from the
-- verified tenant context.
SELECT app.audit(@organization_id::bigint, @action::text, @resource::text, @resource_id::text, 'allowed', @details::jsonb);
