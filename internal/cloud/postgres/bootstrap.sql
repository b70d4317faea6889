-- Cluster-level set-up that numbered migrations cannot do: the four roles
-- of DESIGN.md §3, the owner's right to create schemas in this database and,
-- where the server preloads it, the TimescaleDB extension. Idempotent; run by
-- `staffctl migrate up` before the migrations, as a user allowed to create
-- roles (the cluster's superuser in development). Where a DBA has created
-- the roles and the extension already, every step is skipped.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'staff_owner') THEN
        CREATE ROLE staff_owner NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'staff_dashboard') THEN
        CREATE ROLE staff_dashboard LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'staff_ingest') THEN
        CREATE ROLE staff_ingest LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOINHERIT;
    END IF;
    -- The all-organisations (platform ADMIN) scope is reachable only in a
    -- session logged in as this role (issue 11).
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'staff_admin') THEN
        CREATE ROLE staff_admin LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOINHERIT;
    END IF;
    IF NOT has_database_privilege('staff_owner', current_database(), 'CREATE') THEN
        EXECUTE format('GRANT CREATE ON DATABASE %I TO staff_owner', current_database());
    END IF;
    IF NOT has_schema_privilege('staff_owner', 'public', 'CREATE') THEN
        GRANT USAGE, CREATE ON SCHEMA public TO staff_owner;
    END IF;
    IF NOT pg_has_role(current_user, 'staff_owner', 'MEMBER') THEN
        EXECUTE format('GRANT staff_owner TO %I', current_user);
    END IF;
END $$;
-- No runtime role needs temporary tables or large objects (issue 11): revoke
-- TEMPORARY on this database from PUBLIC (the database's owner or a
-- superuser may; anyone else gets a warning and nothing changes) and, as a
-- superuser only, the client-side large-object constructors (the fastpath
-- interface checks EXECUTE too). Database privileges are not copied by
-- CREATE DATABASE … TEMPLATE; function privileges are.
DO $$
BEGIN
    IF has_database_privilege('public', current_database(), 'TEMPORARY') THEN
        EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    END IF;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND has_function_privilege('public', 'pg_catalog.lo_create(oid)', 'EXECUTE') THEN
        REVOKE EXECUTE ON FUNCTION pg_catalog.lo_create(oid), pg_catalog.lo_creat(integer),
            pg_catalog.lo_from_bytea(oid, bytea), pg_catalog.lo_import(text), pg_catalog.lo_import(text, oid)
            FROM PUBLIC;
    END IF;
END $$;

-- TimescaleDB (issue 12). The extension is created here, by the
-- administrator, never by the owner (it is not a trusted extension: it
-- needs a superuser, or a managed service's pre-installation). It is created
-- only when
--   * the server has the package and preloads the library: CREATE EXTENSION
--     of a library that is not preloaded ends the session (FATAL), so the
--     setting is read first, which needs a superuser or pg_read_all_settings;
--     an administrator who may not read it gets the native partitions;
--   * the time series do not exist yet: the engine is chosen once, when
--     migration 00002 creates schema monitoring, and a database that holds
--     native partitions keeps them (monitoring.storage_kind() reads what the
--     tables are, not whether the extension exists).
-- TimescaleDB runs its jobs (retention, compression, aggregate refresh) as
-- the hypertables' owner and refuses a role without LOGIN, so with the
-- extension the owner gets LOGIN. It has no password, and pg_hba.conf must
-- reject it (docs/operations.md): the jobs are background workers, which do
-- not pass through pg_hba.conf, so no client can log in as the owner.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND to_regnamespace('monitoring') IS NULL
       AND pg_has_role(current_user, 'pg_read_all_settings', 'USAGE')
       AND current_setting('shared_preload_libraries') ~ '(^|[\s,])"?timescaledb"?($|[\s,])' THEN
        CREATE EXTENSION timescaledb;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
       AND NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'staff_owner') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            ALTER ROLE staff_owner LOGIN;
        ELSE
            RAISE WARNING 'TimescaleDB jobs run as staff_owner, which needs LOGIN: ALTER ROLE staff_owner LOGIN (as a user allowed to), and reject it in pg_hba.conf';
        END IF;
    END IF;
END $$;
