-- Fallback storage for the time series (DESIGN.md §2 "Time-series storage
-- and fallback"): when the time-series store (TIMESCALE_URL) fails three
-- writes in a row, the Agent API writes batches into schema
-- monitoring_fallback of the main database until the store recovers, then
-- copies them back (verified) and deletes them.
--
-- The fallback tables have the time-series tables' columns (LIKE), daily
-- partitions maintained by the same functions, and no grant for the
-- dashboard role. The monitoring_read views now read both stores, so reads
-- during a fallback see every event once.

-- +goose Up
-- +goose StatementBegin
CREATE SCHEMA monitoring_fallback;
REVOKE ALL ON SCHEMA monitoring_fallback FROM PUBLIC;

DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT table_name FROM monitoring.retention ORDER BY table_name LOOP
        EXECUTE format('CREATE TABLE monitoring_fallback.%I (LIKE monitoring.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY (id, datetime)) PARTITION BY RANGE (datetime)', t, t);
    END LOOP;
END $$;

-- Partitions of both schemas: monitoring (unless TimescaleDB manages it)
-- and monitoring_fallback (always native partitions).
CREATE OR REPLACE FUNCTION monitoring.ensure_partitions(p_from date, p_to date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    s text;
    t text;
    d date;
    created integer := 0;
    pname text;
BEGIN
    IF p_to < p_from OR p_to - p_from > 400 THEN
        RAISE EXCEPTION 'ensure_partitions: bad range % .. %', p_from, p_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH s IN ARRAY ARRAY['monitoring', 'monitoring_fallback'] LOOP
        CONTINUE WHEN s = 'monitoring' AND monitoring.storage_kind() <> 'partitions';
        FOR t IN SELECT table_name FROM monitoring.retention ORDER BY table_name LOOP
            d := p_from;
            WHILE d <= p_to LOOP
                pname := t || '_p' || to_char(d, 'YYYYMMDD');
                IF to_regclass(format('%I.%I', s, pname)) IS NULL THEN
                    PERFORM pg_advisory_xact_lock(hashtext(s || '.' || pname));
                    IF to_regclass(format('%I.%I', s, pname)) IS NULL THEN
                        EXECUTE format(
                            'CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                            s, pname, s, t, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
                        EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', s, pname);
                        created := created + 1;
                    END IF;
                END IF;
                d := d + 1;
            END LOOP;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;

CREATE OR REPLACE FUNCTION monitoring.drop_expired_partitions(p_now timestamptz) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT n.nspname, c.relname, ret.days, to_date(right(c.relname, 8), 'YYYYMMDD') AS day
        FROM monitoring.retention ret
        CROSS JOIN unnest(ARRAY['monitoring', 'monitoring_fallback']) AS s(schema_name)
        JOIN pg_inherits i ON i.inhparent = to_regclass(format('%I.%I', s.schema_name, ret.table_name))
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname ~ '_p[0-9]{8}$'
          AND (s.schema_name = 'monitoring_fallback' OR monitoring.storage_kind() = 'partitions')
    LOOP
        IF ((r.day + 1)::timestamp AT TIME ZONE 'UTC') <= p_now - make_interval(days => r.days) THEN
            EXECUTE format('DROP TABLE %I.%I', r.nspname, r.relname);
            RETURN NEXT r.nspname || '.' || r.relname;
        END IF;
    END LOOP;
END $$;

SELECT monitoring.ensure_partitions(current_date - 8, current_date + 3);

-- Reads see both stores; a row being re-synced (in both at once) is read once.
CREATE OR REPLACE VIEW monitoring_read.active_windows WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, window_title,
           process_name, url, datetime, duration_seconds
    FROM monitoring.active_windows
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    UNION ALL
    SELECT f.id, f.organization_id, f.gateway_id, f.agent_uid, f.computer_uid, f.user_sid, f.window_title,
           f.process_name, f.url, f.datetime, f.duration_seconds
    FROM monitoring_fallback.active_windows f
    WHERE (f.organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
           OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN')
      AND NOT EXISTS (SELECT 1 FROM monitoring.active_windows m WHERE m.id = f.id AND m.datetime = f.datetime);

CREATE OR REPLACE VIEW monitoring_read.visited_sites WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, url, title,
           datetime, duration_seconds
    FROM monitoring.visited_sites
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    UNION ALL
    SELECT f.id, f.organization_id, f.gateway_id, f.agent_uid, f.computer_uid, f.user_sid, f.url, f.title,
           f.datetime, f.duration_seconds
    FROM monitoring_fallback.visited_sites f
    WHERE (f.organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
           OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN')
      AND NOT EXISTS (SELECT 1 FROM monitoring.visited_sites m WHERE m.id = f.id AND m.datetime = f.datetime);

CREATE OR REPLACE VIEW monitoring_read.screenshots WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, file_path,
           file_size, sha256, datetime
    FROM monitoring.screenshots
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    UNION ALL
    SELECT f.id, f.organization_id, f.gateway_id, f.agent_uid, f.computer_uid, f.user_sid, f.file_path,
           f.file_size, f.sha256, f.datetime
    FROM monitoring_fallback.screenshots f
    WHERE (f.organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
           OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN')
      AND NOT EXISTS (SELECT 1 FROM monitoring.screenshots m WHERE m.id = f.id AND m.datetime = f.datetime);

CREATE OR REPLACE VIEW monitoring_read.user_sessions WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, session_type, datetime
    FROM monitoring.user_sessions
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    UNION ALL
    SELECT f.id, f.organization_id, f.gateway_id, f.agent_uid, f.computer_uid, f.user_sid, f.session_type, f.datetime
    FROM monitoring_fallback.user_sessions f
    WHERE (f.organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
           OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN')
      AND NOT EXISTS (SELECT 1 FROM monitoring.user_sessions m WHERE m.id = f.id AND m.datetime = f.datetime);

CREATE OR REPLACE VIEW monitoring_read.device_events WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, device_id, device_serial, datetime, employee_number,
           card_number, door, major_code, minor_code, verify_mode, direction
    FROM monitoring.device_events
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    UNION ALL
    SELECT f.id, f.organization_id, f.gateway_id, f.device_id, f.device_serial, f.datetime, f.employee_number,
           f.card_number, f.door, f.major_code, f.minor_code, f.verify_mode, f.direction
    FROM monitoring_fallback.device_events f
    WHERE (f.organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
           OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN')
      AND NOT EXISTS (SELECT 1 FROM monitoring.device_events m WHERE m.id = f.id AND m.datetime = f.datetime);

-- The ingest role writes fallback rows, and re-syncs them: it reads both
-- stores (to copy and verify) and deletes fallback rows once verified.
-- It is a platform role; tenants never connect as it.
GRANT USAGE ON SCHEMA monitoring_fallback TO staff_ingest;
GRANT SELECT, INSERT, DELETE ON monitoring_fallback.active_windows, monitoring_fallback.visited_sites,
    monitoring_fallback.screenshots, monitoring_fallback.user_sessions, monitoring_fallback.device_events TO staff_ingest;
GRANT SELECT ON monitoring.active_windows, monitoring.visited_sites, monitoring.screenshots,
    monitoring.user_sessions, monitoring.device_events TO staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
REVOKE SELECT ON monitoring.active_windows, monitoring.visited_sites, monitoring.screenshots,
    monitoring.user_sessions, monitoring.device_events FROM staff_ingest;
CREATE OR REPLACE VIEW monitoring_read.active_windows WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, window_title,
           process_name, url, datetime, duration_seconds
    FROM monitoring.active_windows
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN';
CREATE OR REPLACE VIEW monitoring_read.visited_sites WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, url, title,
           datetime, duration_seconds
    FROM monitoring.visited_sites
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN';
CREATE OR REPLACE VIEW monitoring_read.screenshots WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, file_path,
           file_size, sha256, datetime
    FROM monitoring.screenshots
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN';
CREATE OR REPLACE VIEW monitoring_read.user_sessions WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, session_type, datetime
    FROM monitoring.user_sessions
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN';
CREATE OR REPLACE VIEW monitoring_read.device_events WITH (security_barrier) AS
    SELECT id, organization_id, gateway_id, device_id, device_serial, datetime, employee_number,
           card_number, door, major_code, minor_code, verify_mode, direction
    FROM monitoring.device_events
    WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
       OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN';
DROP SCHEMA monitoring_fallback CASCADE;
-- The partition functions of 00002 ignore the missing fallback schema.
CREATE OR REPLACE FUNCTION monitoring.ensure_partitions(p_from date, p_to date) RETURNS integer
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
CREATE OR REPLACE FUNCTION monitoring.drop_expired_partitions(p_now timestamptz) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    r record;
BEGIN
    IF monitoring.storage_kind() <> 'partitions' THEN
        RETURN;
    END IF;
    FOR r IN
        SELECT c.relname, ret.days, to_date(right(c.relname, 8), 'YYYYMMDD') AS day
        FROM monitoring.retention ret
        JOIN pg_inherits i ON i.inhparent = format('monitoring.%I', ret.table_name)::regclass
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE c.relname ~ '_p[0-9]{8}$'
    LOOP
        IF ((r.day + 1)::timestamp AT TIME ZONE 'UTC') <= p_now - make_interval(days => r.days) THEN
            EXECUTE format('DROP TABLE monitoring.%I', r.relname);
            RETURN NEXT r.relname;
        END IF;
    END LOOP;
END $$;
-- +goose StatementEnd
