-- Hand-written (loaded by sqlfile, not compiled by sqlc): the read-only
-- status reads of `staffctl up`'s live summary (up_status.go). cmd/staffctl
-- has no sqlc package of its own; these run in the demo organisation's
-- tenant transaction as staff_admin, whose ADMIN context sees every
-- organisation's rows, so each names the organisation ($1) explicitly.

-- name: UpGateways :one
-- Gateways of the organisation online, and those provisioned (online or
-- offline: neither still waiting for provisioning nor revoked).
SELECT count(*) FILTER (WHERE status = 'online')::int AS online,
       count(*) FILTER (WHERE status IN ('online', 'offline'))::int AS provisioned
FROM gateway_instances WHERE organization_id = $1;

-- name: UpDirectory :one
-- Departments, employees, and employees with a Windows SID identity.
SELECT (SELECT count(*) FROM departments WHERE organization_id = $1)::int AS departments,
       (SELECT count(*) FROM employees WHERE organization_id = $1)::int AS employees,
       (SELECT count(DISTINCT i.employee_id) FROM employee_identities i JOIN employees e ON e.id = i.employee_id
         WHERE e.organization_id = $1 AND i.kind = 'windows_sid')::int AS with_sid;

-- name: UpLastDoorEvent :many
-- The newest door-terminal event stored (main store and fallback), with its
-- device's and employee's names when known: zero or one row.
SELECT d.datetime, coalesce(d.device_id, 0) AS device_id, coalesce(dev.name, d.device_serial) AS device, coalesce(d.door, 0) AS door,
       coalesce(d.employee_number, '') AS employee_number, coalesce(d.card_number, '') AS card_number,
       coalesce(e.first_name || ' ' || e.last_name, '') AS employee, coalesce(d.direction, '') AS direction
FROM monitoring_read.device_events d
LEFT JOIN devices dev ON dev.id = d.device_id AND dev.organization_id = d.organization_id
LEFT JOIN employees e ON e.organization_id = d.organization_id AND e.employee_number = d.employee_number
WHERE d.organization_id = $1
ORDER BY d.datetime DESC LIMIT 1;

-- name: UpDoorNames :one
-- The names of a door event's device and employee, read in the main
-- database for an event of the separate time-series store ('' when unknown).
SELECT coalesce((SELECT name FROM devices WHERE organization_id = $1 AND id = $2), '') AS device,
       coalesce((SELECT first_name || ' ' || last_name FROM employees WHERE organization_id = $1 AND employee_number = $3), '') AS employee;
