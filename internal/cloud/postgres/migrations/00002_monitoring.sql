-- The time series in schema monitoring (DESIGN.md §2 "Time-series storage").
--
-- With the TimescaleDB extension (created by bootstrap.sql) the tables become
-- hypertables with 1-day chunks and retention policies. Without it they are
-- native declarative partitions by day, created ahead and dropped by
-- retention through monitoring.ensure_partitions and
-- monitoring.drop_expired_partitions, which the Agent API calls.
--
-- The dashboard role has no privilege on schema monitoring at all: it reads
-- the time series only through the security_barrier views in schema
-- monitoring_read, which filter by the transaction's organisation. The
-- ingest role inserts into the parents (never a partition or chunk) with the
-- organisation of the authenticated gateway.

-- +goose Up
-- +goose StatementBegin
CREATE SCHEMA monitoring;
CREATE SCHEMA monitoring_read;
REVOKE ALL ON SCHEMA monitoring, monitoring_read FROM PUBLIC;

-- Retention per table, in days (the seed's 90/90/30/365; device events 365).
CREATE TABLE monitoring.retention (
    table_name text PRIMARY KEY,
    days       integer NOT NULL CHECK (days > 0)
);
INSERT INTO monitoring.retention VALUES
    ('active_windows', 90), ('visited_sites', 90), ('screenshots', 30),
    ('user_sessions', 365), ('device_events', 365);

-- Which engine stores the series: 'timescaledb' or 'partitions'.
CREATE FUNCTION monitoring.storage_kind() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
                THEN 'timescaledb' ELSE 'partitions' END
$$;

DO $do$
DECLARE
    -- The administrator's bootstrap (bootstrap.sql) creates the extension
    -- where the server preloads it; the owner never does, and never reads
    -- shared_preload_libraries (which needs pg_read_all_settings: reading it
    -- here failed on every server with the package installed, issue 12).
    use_ts boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
    part text;
    r record;
BEGIN
    IF use_ts THEN
        part := '';
    ELSE
        part := ' PARTITION BY RANGE (datetime)';
    END IF;

    EXECUTE $t$CREATE TABLE monitoring.active_windows (
        id               uuid NOT NULL,
        organization_id  bigint NOT NULL,
        gateway_id       uuid NOT NULL,
        seq              bigint NOT NULL,
        agent_uid        text NOT NULL,
        computer_uid     text NOT NULL,
        user_sid         text NOT NULL,
        window_title     text,
        process_name     text,
        url              text,
        datetime         timestamptz NOT NULL,
        duration_seconds integer,
        ingested_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, datetime))$t$ || part;

    EXECUTE $t$CREATE TABLE monitoring.visited_sites (
        id               uuid NOT NULL,
        organization_id  bigint NOT NULL,
        gateway_id       uuid NOT NULL,
        seq              bigint NOT NULL,
        agent_uid        text NOT NULL,
        computer_uid     text NOT NULL,
        user_sid         text NOT NULL,
        url              text NOT NULL,
        title            text,
        datetime         timestamptz NOT NULL,
        duration_seconds integer,
        ingested_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, datetime))$t$ || part;

    EXECUTE $t$CREATE TABLE monitoring.screenshots (
        id               uuid NOT NULL,
        organization_id  bigint NOT NULL,
        gateway_id       uuid NOT NULL,
        seq              bigint NOT NULL,
        agent_uid        text NOT NULL,
        computer_uid     text NOT NULL,
        user_sid         text NOT NULL,
        file_path        text NOT NULL,
        file_size        bigint,
        sha256           text,
        datetime         timestamptz NOT NULL,
        ingested_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, datetime))$t$ || part;

    EXECUTE $t$CREATE TABLE monitoring.user_sessions (
        id               uuid NOT NULL,
        organization_id  bigint NOT NULL,
        gateway_id       uuid NOT NULL,
        seq              bigint NOT NULL,
        agent_uid        text NOT NULL,
        computer_uid     text NOT NULL,
        user_sid         text NOT NULL,
        session_type     text NOT NULL,
        datetime         timestamptz NOT NULL,
        ingested_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, datetime))$t$ || part;

    EXECUTE $t$CREATE TABLE monitoring.device_events (
        id               uuid NOT NULL,
        organization_id  bigint NOT NULL,
        gateway_id       uuid NOT NULL,
        seq              bigint NOT NULL,
        device_id        bigint,
        device_serial    text NOT NULL,
        datetime         timestamptz NOT NULL,
        employee_number  text,
        card_number      text,
        door             integer,
        major_code       integer NOT NULL,
        minor_code       integer NOT NULL,
        verify_mode      text,
        direction        text,
        ingested_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, datetime))$t$ || part;

    IF use_ts THEN
        FOR r IN SELECT table_name, days FROM monitoring.retention LOOP
            PERFORM create_hypertable(format('monitoring.%I', r.table_name)::regclass, 'datetime',
                chunk_time_interval => interval '1 day');
            PERFORM add_retention_policy(format('monitoring.%I', r.table_name)::regclass,
                make_interval(days => r.days));
        END LOOP;
    END IF;
END $do$;

CREATE INDEX ON monitoring.active_windows (organization_id, datetime DESC);
CREATE INDEX ON monitoring.visited_sites (organization_id, datetime DESC);
CREATE INDEX ON monitoring.screenshots (organization_id, datetime DESC);
CREATE INDEX ON monitoring.user_sessions (organization_id, datetime DESC);
CREATE INDEX ON monitoring.device_events (organization_id, datetime DESC);

-- Create the daily partitions covering [p_from, p_to] that do not exist yet.
-- A no-op under TimescaleDB, which creates chunks itself. Runs as the owner
-- (SECURITY DEFINER) so that the ingest role can call it without owning the
-- tables; partitions get no grants, so nobody but the owner can address one
-- directly.
CREATE FUNCTION monitoring.ensure_partitions(p_from date, p_to date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    t text;
    d date;
    created integer := 0;
    pname text;
BEGIN
    IF monitoring.storage_kind() <> 'partitions' THEN
        RETURN 0;
    END IF;
    IF p_to < p_from OR p_to - p_from > 400 THEN
        RAISE EXCEPTION 'ensure_partitions: bad range % .. %', p_from, p_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR t IN SELECT table_name FROM monitoring.retention ORDER BY table_name LOOP
        d := p_from;
        WHILE d <= p_to LOOP
            pname := t || '_p' || to_char(d, 'YYYYMMDD');
            IF to_regclass(format('monitoring.%I', pname)) IS NULL THEN
                -- Serialise concurrent creators of the same partition.
                PERFORM pg_advisory_xact_lock(hashtext('monitoring.' || pname));
                IF to_regclass(format('monitoring.%I', pname)) IS NULL THEN
                    EXECUTE format(
                        'CREATE TABLE monitoring.%I PARTITION OF monitoring.%I FOR VALUES FROM (%L) TO (%L)',
                        pname, t, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
                    EXECUTE format('REVOKE ALL ON monitoring.%I FROM PUBLIC', pname);
                    created := created + 1;
                END IF;
            END IF;
            d := d + 1;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;

-- Drop the daily partitions entirely older than each table's retention,
-- measured from p_now. Returns the names dropped. A no-op under TimescaleDB,
-- whose retention policies do the same.
CREATE FUNCTION monitoring.drop_expired_partitions(p_now timestamptz) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    r record;
BEGIN
    IF monitoring.storage_kind() <> 'partitions' THEN
        RETURN;
    END IF;
    FOR r IN
        SELECT c.relname, ret.days,
               to_date(right(c.relname, 8), 'YYYYMMDD') AS day
        FROM monitoring.retention ret
        JOIN pg_inherits i ON i.inhparent = format('monitoring.%I', ret.table_name)::regclass
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE c.relname ~ '_p[0-9]{8}$'
    LOOP
        -- A partition holds [day, day+1); it is expired once all of it is
        -- older than the retention window.
        IF ((r.day + 1)::timestamp AT TIME ZONE 'UTC') <= p_now - make_interval(days => r.days) THEN
            EXECUTE format('DROP TABLE monitoring.%I', r.relname);
            RETURN NEXT r.relname;
        END IF;
    END LOOP;
END $$;

REVOKE ALL ON FUNCTION monitoring.ensure_partitions(date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring.drop_expired_partitions(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION monitoring.storage_kind() FROM PUBLIC;

-- Partitions for the recent past (the gateway keeps 7 days) and a few days
-- ahead, so that a fresh database accepts events at once.
SELECT monitoring.ensure_partitions(current_date - 8, current_date + 3);

-- Tenant-filtering read paths for the dashboard role. security_barrier keeps
-- the organisation filter ahead of any predicate the caller adds.
CREATE VIEW monitoring_read.active_windows WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, window_title,
           process_name, url, datetime, duration_seconds
    FROM monitoring.active_windows
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN';

CREATE VIEW monitoring_read.visited_sites WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, url, title,
           datetime, duration_seconds
    FROM monitoring.visited_sites
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN';

CREATE VIEW monitoring_read.screenshots WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, file_path,
           file_size, sha256, datetime
    FROM monitoring.screenshots
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN';

CREATE VIEW monitoring_read.user_sessions WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, session_type, datetime
    FROM monitoring.user_sessions
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN';

CREATE VIEW monitoring_read.device_events WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, device_id, device_serial, datetime, employee_number,
           card_number, door, major_code, minor_code, verify_mode, direction
    FROM monitoring.device_events
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN';

GRANT USAGE ON SCHEMA monitoring_read TO staff_dashboard;
GRANT SELECT ON ALL TABLES IN SCHEMA monitoring_read TO staff_dashboard;

-- The ingest role inserts through the parents (it cannot read them back)
-- and maintains partitions through the functions above; it never addresses
-- a partition.
GRANT USAGE ON SCHEMA monitoring TO staff_ingest;
GRANT INSERT ON monitoring.active_windows, monitoring.visited_sites, monitoring.screenshots,
    monitoring.user_sessions, monitoring.device_events TO staff_ingest;
GRANT SELECT ON monitoring.retention TO staff_ingest;
GRANT EXECUTE ON FUNCTION monitoring.ensure_partitions(date, date),
    monitoring.drop_expired_partitions(timestamptz), monitoring.storage_kind() TO staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP SCHEMA monitoring_read CASCADE;
DROP SCHEMA monitoring CASCADE;
-- +goose StatementEnd
