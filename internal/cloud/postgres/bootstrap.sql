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

-- TimescaleDB's statistics of the stored data (issue 12): sizes and row
-- counts of every chunk, its compression and the jobs' runs, readable by
-- PUBLIC as the extension installs them. They hold no rows, but a chunk
-- holds every organisation's rows of a day and, compressed, one batch per
-- organisation, so they describe other organisations' activity (and
-- chunk_statistics() every database's chunks on the server). The runtime
-- roles need none of them: TimescaleDB's planner, inserts, decompression
-- and jobs read its catalog directly. Revoked from PUBLIC and granted to
-- the owner, whose size functions (hypertable_size(), chunk_compression_
-- stats()) read them; the catalog views (timescaledb_information) stay
-- readable. PostgreSQL's own catalogs show relation sizes to every role
-- (pg_class, pg_relation_size()), on native partitions too: this closes
-- TimescaleDB's finer statistics, not the size of a day. Done by the
-- extension's owner (the administrator who created it); an ALTER
-- EXTENSION timescaledb UPDATE grants them to PUBLIC again, and the next
-- `staffctl migrate up` revokes them again. TestTimescaleDBStatistics-
-- ClosedToRuntimeRoles asserts this list.
DO $$
DECLARE
    rel text;
    fn  text := '_timescaledb_functions.chunk_statistics(regclass, regclass, timestamp with time zone)';
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RETURN;
    END IF;
    IF NOT pg_has_role(current_user, (SELECT extowner FROM pg_extension WHERE extname = 'timescaledb'), 'USAGE') THEN
        RAISE WARNING 'TimescaleDB''s chunk statistics stay readable by PUBLIC: revoke them as the extension''s owner (bootstrap.sql)';
        RETURN;
    END IF;
    FOREACH rel IN ARRAY ARRAY['_timescaledb_internal.bgw_job_stat', '_timescaledb_internal.bgw_policy_chunk_stats',
            '_timescaledb_internal.hypertable_chunk_local_size', '_timescaledb_internal.compressed_chunk_stats',
            '_timescaledb_catalog.compression_chunk_size', 'timescaledb_information.stat_chunk_activity'] LOOP
        CONTINUE WHEN to_regclass(rel) IS NULL;
        IF has_table_privilege('public', rel, 'SELECT') THEN
            EXECUTE format('REVOKE SELECT ON %s FROM PUBLIC', rel);
        END IF;
        IF NOT has_table_privilege('staff_owner', rel, 'SELECT') THEN
            EXECUTE format('GRANT SELECT ON %s TO staff_owner', rel);
        END IF;
    END LOOP;
    IF to_regprocedure(fn) IS NOT NULL AND has_function_privilege('public', fn, 'EXECUTE') THEN
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', fn);
    END IF;
END $$;
