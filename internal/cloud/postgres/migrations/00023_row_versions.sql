-- Row versions for optimistic concurrency (issue 14, Dashboard API).
--
-- The Dashboard API sends a row's version as its ETag and requires
-- If-Match on every update and delete, so that two people editing the same
-- employee cannot silently overwrite each other: an update names the
-- version it read (UPDATE ... WHERE id = $1 AND row_version = $2) and
-- matches nothing once someone else has changed the row.
--
-- The column is row_version, not version: gateway_instances.version is the
-- gateway software's version string already, and one name on every table
-- keeps the API's code uniform.
--
-- The version is kept by the database, never by the caller: one BEFORE
-- UPDATE trigger function sets NEW.row_version := OLD.row_version + 1
-- (whatever the statement wrote there) and NEW.updated_at := now(); every
-- table named here has updated_at (retention_policies gets one now), so
-- one function serves them all. It reads no table, so it needs no
-- privilege and is not SECURITY DEFINER; like the other trigger functions,
-- nobody may call it directly (REVOKE ... FROM PUBLIC).
--
-- Most tables bump on every update. Three are also written by machines,
-- and a version that moves on every heartbeat or sign-in would make every
-- If-Match from the dashboard fail: gateway_instances (heartbeats write
-- status, last_seen_at, version; key rotation writes the key columns) and
-- devices (status, last_seen_at) bump only when a column the dashboard
-- edits is in the UPDATE's SET list; users likewise ignore last_login_at.
--
-- The employees' list pages are keyset pages on (sort key, id)
-- (internal/cloud/directory). The tenant policy is an OR (own organisation
-- or all organisations), which no (organization_id, ...) index serves, so
-- the indexes are on (sort key, id) alone: the plan walks the index from
-- the cursor and stops after one page, filtering the organisation per row,
-- instead of sorting every employee of every organisation per page.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION app.bump_version() RETURNS trigger
LANGUAGE plpgsql
SET search_path TO 'pg_catalog'
AS $$
BEGIN
    NEW.row_version := OLD.row_version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION app.bump_version() FROM PUBLIC;

ALTER TABLE organizations ADD COLUMN row_version bigint NOT NULL DEFAULT 1;
ALTER TABLE departments ADD COLUMN row_version bigint NOT NULL DEFAULT 1;
ALTER TABLE employees ADD COLUMN row_version bigint NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN row_version bigint NOT NULL DEFAULT 1;
ALTER TABLE gateway_instances ADD COLUMN row_version bigint NOT NULL DEFAULT 1;
ALTER TABLE devices ADD COLUMN row_version bigint NOT NULL DEFAULT 1;
ALTER TABLE policies ADD COLUMN row_version bigint NOT NULL DEFAULT 1;
ALTER TABLE retention_policies ADD COLUMN row_version bigint NOT NULL DEFAULT 1,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

CREATE TRIGGER organizations_bump_version BEFORE UPDATE ON organizations
    FOR EACH ROW EXECUTE FUNCTION app.bump_version();
CREATE TRIGGER departments_bump_version BEFORE UPDATE ON departments
    FOR EACH ROW EXECUTE FUNCTION app.bump_version();
CREATE TRIGGER employees_bump_version BEFORE UPDATE ON employees
    FOR EACH ROW EXECUTE FUNCTION app.bump_version();
CREATE TRIGGER users_bump_version
    BEFORE UPDATE OF organization_id, email, password_hash, role, department_id, employee_id, is_active ON users
    FOR EACH ROW EXECUTE FUNCTION app.bump_version();
CREATE TRIGGER gateway_instances_bump_version BEFORE UPDATE OF name, config ON gateway_instances
    FOR EACH ROW EXECUTE FUNCTION app.bump_version();
CREATE TRIGGER devices_bump_version
    BEFORE UPDATE OF gateway_id, name, adapter_type, host, port, serial, config ON devices
    FOR EACH ROW EXECUTE FUNCTION app.bump_version();
CREATE TRIGGER policies_bump_version BEFORE UPDATE ON policies
    FOR EACH ROW EXECUTE FUNCTION app.bump_version();
CREATE TRIGGER retention_policies_bump_version BEFORE UPDATE ON retention_policies
    FOR EACH ROW EXECUTE FUNCTION app.bump_version();

CREATE INDEX employees_last_name_id_idx ON employees (last_name, id);
CREATE INDEX employees_employee_number_id_idx ON employees (employee_number, id);
CREATE INDEX employees_created_at_id_idx ON employees (created_at, id);
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP INDEX employees_created_at_id_idx;
DROP INDEX employees_employee_number_id_idx;
DROP INDEX employees_last_name_id_idx;
DROP TRIGGER retention_policies_bump_version ON retention_policies;
DROP TRIGGER policies_bump_version ON policies;
DROP TRIGGER devices_bump_version ON devices;
DROP TRIGGER gateway_instances_bump_version ON gateway_instances;
DROP TRIGGER users_bump_version ON users;
DROP TRIGGER employees_bump_version ON employees;
DROP TRIGGER departments_bump_version ON departments;
DROP TRIGGER organizations_bump_version ON organizations;
ALTER TABLE retention_policies DROP COLUMN updated_at, DROP COLUMN row_version;
ALTER TABLE policies DROP COLUMN row_version;
ALTER TABLE devices DROP COLUMN row_version;
ALTER TABLE gateway_instances DROP COLUMN row_version;
ALTER TABLE users DROP COLUMN row_version;
ALTER TABLE employees DROP COLUMN row_version;
ALTER TABLE departments DROP COLUMN row_version;
ALTER TABLE organizations DROP COLUMN row_version;
DROP FUNCTION app.bump_version();
-- +goose StatementEnd
