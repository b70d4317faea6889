-- The relational tables of Staff Control, with per-organisation isolation
-- enforced by row-level security (DESIGN.md §3).
--
-- Every statement here runs as the owner role (staff_owner). The dashboard
-- role (staff_dashboard) and the ingest role (staff_ingest) own nothing and
-- reach tenant rows only through the policies below, which read the
-- transaction-local settings app.current_organization_id and
-- app.current_role. A missing or empty setting matches no row.

-- +goose Up
-- +goose StatementBegin
CREATE TABLE organizations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    settings    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE departments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    parent_id       bigint,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, name),
    FOREIGN KEY (organization_id, parent_id) REFERENCES departments(organization_id, id)
);

CREATE TABLE employees (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    department_id   bigint,
    employee_number text NOT NULL CHECK (length(employee_number) BETWEEN 1 AND 64),
    first_name      text NOT NULL CHECK (length(first_name) <= 255),
    last_name       text NOT NULL CHECK (length(last_name) <= 255),
    email           text CHECK (length(email) <= 255),
    position        text CHECK (length(position) <= 255),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, employee_number),
    FOREIGN KEY (organization_id, department_id) REFERENCES departments(organization_id, id)
);

-- How agents and terminals name an employee: a Windows user SID, a computer,
-- a badge card number or an employee number on a door terminal.
CREATE TABLE employee_identities (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    employee_id     bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('windows_sid', 'computer', 'card_number', 'employee_number')),
    value           text NOT NULL CHECK (length(value) BETWEEN 1 AND 255),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, kind, value),
    FOREIGN KEY (organization_id, employee_id) REFERENCES employees(organization_id, id) ON DELETE CASCADE
);

-- Dashboard users. A platform ADMIN belongs to no organisation; every other
-- role belongs to exactly one.
CREATE TABLE users (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint REFERENCES organizations(id) ON DELETE CASCADE,
    email           text NOT NULL CHECK (length(email) BETWEEN 3 AND 255 AND email = lower(email)),
    password_hash   text NOT NULL,
    role            text NOT NULL CHECK (role IN ('ADMIN', 'ORG_ADMIN', 'HR', 'DEPARTMENT_LEAD', 'EMPLOYEE')),
    department_id   bigint,
    employee_id     bigint,
    is_active       boolean NOT NULL DEFAULT true,
    last_login_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (email),
    UNIQUE (organization_id, id),
    CHECK ((role = 'ADMIN') = (organization_id IS NULL)),
    FOREIGN KEY (organization_id, department_id) REFERENCES departments(organization_id, id),
    FOREIGN KEY (organization_id, employee_id) REFERENCES employees(organization_id, id)
);

CREATE TABLE policies (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description     text CHECK (length(description) <= 2000),
    content         jsonb NOT NULL DEFAULT '{}',
    current_version text CHECK (length(current_version) <= 50),
    created_by      bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, name),
    FOREIGN KEY (organization_id, created_by) REFERENCES users(organization_id, id)
);

CREATE TABLE gateway_instances (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    serial          text NOT NULL CHECK (length(serial) BETWEEN 1 AND 255),
    name            text CHECK (length(name) <= 255),
    -- SHA-256 of the API key; the key itself is shown once and never stored.
    api_key_hash    bytea UNIQUE CHECK (length(api_key_hash) = 32),
    api_key_prefix  text CHECK (length(api_key_prefix) <= 16),
    status          text NOT NULL DEFAULT 'provisioning'
                    CHECK (status IN ('provisioning', 'online', 'offline', 'revoked')),
    last_seen_at    timestamptz,
    version         text CHECK (length(version) <= 50),
    config          jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, serial)
);

-- One-time, expiring tokens a new gateway exchanges for its API key.
CREATE TABLE provisioning_tokens (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id bigint NOT NULL,
    gateway_id      uuid NOT NULL,
    token_hash      bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    created_by      text NOT NULL CHECK (length(created_by) <= 255),
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateway_instances(organization_id, id) ON DELETE CASCADE
);

CREATE TABLE gateway_status_snapshots (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  bigint NOT NULL,
    gateway_id       uuid NOT NULL,
    "timestamp"      timestamptz NOT NULL,
    cpu_usage        numeric(5,2),
    memory_usage     numeric(5,2),
    disk_usage       numeric(5,2),
    buffer_usage     numeric(5,2),
    queue_depth      integer,
    connected_agents integer,
    versions         jsonb NOT NULL DEFAULT '{}',
    network_status   jsonb NOT NULL DEFAULT '{}',
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateway_instances(organization_id, id) ON DELETE CASCADE
);
CREATE INDEX gateway_status_snapshots_gateway_time ON gateway_status_snapshots (gateway_id, "timestamp" DESC);

CREATE TABLE agent_instances (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id bigint NOT NULL,
    gateway_id      uuid NOT NULL,
    agent_uid       text NOT NULL CHECK (length(agent_uid) BETWEEN 1 AND 255),
    computer_name   text CHECK (length(computer_name) <= 255),
    status          text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline')),
    last_seen_at    timestamptz,
    policy_version  text CHECK (length(policy_version) <= 50),
    version         text CHECK (length(version) <= 50),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway_id, agent_uid),
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateway_instances(organization_id, id) ON DELETE CASCADE
);

CREATE TABLE gateway_commands (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id bigint NOT NULL,
    gateway_id      uuid NOT NULL,
    type            text NOT NULL CHECK (type IN ('policy_update', 'restart_agent', 'device_command', 'rotate_api_key')),
    payload         jsonb NOT NULL,
    priority        integer NOT NULL DEFAULT 0,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'completed', 'failed', 'expired', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts > 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ack_deadline    timestamptz,
    delivered_at    timestamptz,
    ack_at          timestamptz,
    completed_at    timestamptz,
    result          jsonb,
    error           text,
    expires_at      timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    created_by      text CHECK (length(created_by) <= 255),
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateway_instances(organization_id, id) ON DELETE CASCADE
);
CREATE INDEX gateway_commands_claim ON gateway_commands (gateway_id, priority DESC, created_at)
    WHERE status = 'pending';

CREATE TABLE policy_versions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  bigint NOT NULL,
    policy_id        bigint NOT NULL,
    version          text NOT NULL CHECK (length(version) BETWEEN 1 AND 50),
    content          jsonb NOT NULL,
    checksum         text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    requires_restart boolean NOT NULL DEFAULT false,
    released_at      timestamptz NOT NULL DEFAULT now(),
    released_by      bigint,
    UNIQUE (policy_id, version),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, policy_id) REFERENCES policies(organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, released_by) REFERENCES users(organization_id, id)
);

CREATE TABLE policy_changes (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id bigint NOT NULL,
    policy_id       bigint NOT NULL,
    version_id      uuid,
    changed_by      bigint,
    changeset       jsonb NOT NULL,
    change_type     text NOT NULL CHECK (change_type IN ('create', 'update', 'delete', 'release', 'rollback')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, policy_id) REFERENCES policies(organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, version_id) REFERENCES policy_versions(organization_id, id),
    FOREIGN KEY (organization_id, changed_by) REFERENCES users(organization_id, id)
);

CREATE TABLE devices (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    gateway_id      uuid,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    adapter_type    text NOT NULL CHECK (length(adapter_type) BETWEEN 1 AND 100),
    host            text CHECK (length(host) <= 255),
    port            integer CHECK (port BETWEEN 1 AND 65535),
    serial          text CHECK (length(serial) <= 255),
    config          jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'unknown' CHECK (status IN ('unknown', 'online', 'offline', 'error', 'auth_failed')),
    last_seen_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateway_instances(organization_id, id)
);

-- The registry of device adapter types is platform data, not tenant data.
CREATE TABLE device_adapters (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type          text NOT NULL CHECK (length(type) BETWEEN 1 AND 100),
    vendor        text NOT NULL CHECK (length(vendor) BETWEEN 1 AND 100),
    version       text NOT NULL CHECK (length(version) BETWEEN 1 AND 50),
    config_schema jsonb NOT NULL,
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (type, version)
);

CREATE TABLE device_commands (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id bigint NOT NULL,
    device_id       bigint NOT NULL,
    gateway_id      uuid NOT NULL,
    adapter_type    text NOT NULL CHECK (length(adapter_type) BETWEEN 1 AND 100),
    command_type    text NOT NULL CHECK (length(command_type) BETWEEN 1 AND 100),
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'completed', 'failed', 'expired', 'cancelled')),
    response        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    FOREIGN KEY (organization_id, device_id) REFERENCES devices(organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateway_instances(organization_id, id) ON DELETE CASCADE
);

-- File retention rules. A row with no organisation is a platform default,
-- readable by every organisation and writable only by ADMIN.
CREATE TABLE retention_policies (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id bigint REFERENCES organizations(id) ON DELETE CASCADE,
    resource_type   text NOT NULL CHECK (length(resource_type) BETWEEN 1 AND 100),
    retention_days  integer NOT NULL CHECK (retention_days > 0),
    action          text NOT NULL DEFAULT 'delete' CHECK (action IN ('delete', 'archive')),
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Append-only audit trail: who did what, allowed or denied.
CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint REFERENCES organizations(id) ON DELETE SET NULL,
    actor_user_id   bigint,
    actor           text NOT NULL CHECK (length(actor) <= 255),
    action          text NOT NULL CHECK (length(action) <= 100),
    resource_type   text NOT NULL CHECK (length(resource_type) <= 100),
    resource_id     text CHECK (length(resource_id) <= 255),
    outcome         text NOT NULL DEFAULT 'allowed' CHECK (outcome IN ('allowed', 'denied')),
    details         jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_org_time ON audit_log (organization_id, created_at DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Row-level security: enabled and forced on every tenant table. The policy
-- lets a row through when its organisation is the transaction's, or when the
-- transaction acts as the platform ADMIN.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'departments', 'employees', 'employee_identities', 'policies',
        'gateway_instances', 'provisioning_tokens', 'gateway_status_snapshots',
        'agent_instances', 'gateway_commands', 'policy_versions', 'policy_changes',
        'devices', 'device_commands'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$
            CREATE POLICY tenant_isolation ON %I
            USING (
                organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
                OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
            )$p$, t);
    END LOOP;
END $$;

ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organizations
    USING (
        id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
        OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    );

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (
        organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
        OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    );

ALTER TABLE retention_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE retention_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON retention_policies FOR SELECT
    USING (
        organization_id IS NULL
        OR organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
        OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    );
CREATE POLICY tenant_write ON retention_policies FOR ALL
    USING (
        organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
        OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    );

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON audit_log FOR SELECT
    USING (
        organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
        OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    );
-- A denied request may have no organisation context; its audit row still lands.
CREATE POLICY tenant_append ON audit_log FOR INSERT
    WITH CHECK (
        organization_id IS NULL
        OR organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
        OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    );

-- Gateway authentication happens before the organisation is known, so it is
-- the one lookup that crosses organisations. It is a SECURITY DEFINER
-- function that returns only the gateway matching a key hash, acts as ADMIN
-- for its own query alone (the caller's setting is restored before it
-- returns), and is executable by the ingest role alone.
CREATE FUNCTION gateway_by_api_key_hash(p_hash bytea)
RETURNS TABLE (gateway_id uuid, organization_id bigint, status text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    RETURN QUERY
        SELECT g.id, g.organization_id, g.status
        FROM public.gateway_instances g
        WHERE g.api_key_hash = p_hash AND g.revoked_at IS NULL;
    PERFORM set_config('app.current_role', saved, true);
END $$;
REVOKE ALL ON FUNCTION gateway_by_api_key_hash(bytea) FROM PUBLIC;

-- Privileges. Nothing is granted to PUBLIC; each runtime role gets what its
-- service needs and nothing on partitions or chunks.
GRANT USAGE ON SCHEMA public TO staff_dashboard, staff_ingest;

GRANT SELECT, INSERT, UPDATE, DELETE ON
    organizations, departments, employees, employee_identities, users, policies,
    gateway_instances, provisioning_tokens, gateway_status_snapshots, agent_instances,
    gateway_commands, policy_versions, policy_changes, devices, device_commands,
    retention_policies
TO staff_dashboard;
GRANT SELECT, INSERT ON audit_log TO staff_dashboard, staff_ingest;
GRANT SELECT ON device_adapters TO staff_dashboard, staff_ingest;

GRANT SELECT, UPDATE ON gateway_instances TO staff_ingest;
GRANT SELECT, UPDATE ON provisioning_tokens TO staff_ingest;
GRANT SELECT, INSERT ON gateway_status_snapshots TO staff_ingest;
GRANT SELECT, INSERT, UPDATE ON agent_instances TO staff_ingest;
GRANT SELECT, UPDATE ON gateway_commands TO staff_ingest;
GRANT SELECT ON organizations, policies, policy_versions, devices, employee_identities TO staff_ingest;
GRANT SELECT, UPDATE ON device_commands TO staff_ingest;
GRANT EXECUTE ON FUNCTION gateway_by_api_key_hash(bytea) TO staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION gateway_by_api_key_hash(bytea);
DROP TABLE audit_log, retention_policies, device_commands, device_adapters, devices,
    policy_changes, policy_versions, gateway_commands, agent_instances,
    gateway_status_snapshots, provisioning_tokens, gateway_instances, policies, users,
    employee_identities, employees, departments, organizations;
DROP FUNCTION audit_log_append_only();
-- +goose StatementEnd
