-- Screenshot metadata (screenshots.go), read only through the
-- tenant-filtering view monitoring_read.screenshots in the caller's tenant
-- transaction: the database narrows to the caller's organisation and role
-- scope (a department lead's subtree, an employee's own identities).

-- name: ListScreenshots :many
-- One page, newest first: [from, to), before the keyset (datetime, id) of
-- the previous page's last row, optionally of some Windows SIDs only.
SELECT id, organization_id, user_sid, computer_uid, file_size, sha256, datetime
FROM monitoring_read.screenshots
WHERE datetime >= @from_time AND datetime < @to_time
  AND (datetime, id) < (@before_time::timestamptz, @before_id::uuid)
  AND (NOT @by_user_sid::boolean OR user_sid = ANY (@user_sids::text[]))
ORDER BY datetime DESC, id DESC
LIMIT @max_rows;

-- name: GetScreenshot :many
-- A screenshot by id (one row per organisation that holds the id: only a
-- platform administrator can see more than one).
SELECT id, organization_id, user_sid, computer_uid, file_path, file_size, sha256, datetime
FROM monitoring_read.screenshots
WHERE id = @id
ORDER BY organization_id
LIMIT 2;

-- name: EmployeeWindowsSIDs :many
-- The Windows SIDs of an employee the caller may see.
SELECT value FROM employee_identities WHERE employee_id = @employee_id AND kind = 'windows_sid';

-- name: EmployeesByWindowsSID :many
-- The employees the caller may see who hold these Windows SIDs.
SELECT organization_id, employee_id, value FROM employee_identities WHERE kind = 'windows_sid' AND value = ANY (@sids::text[]);
