-- Time-series inserts through bounded definer functions (issue 12
-- follow-up; docs/benchmarks.md "TimescaleDB (issue 12)").
--
-- Before: staff_ingest held INSERT on the five series of monitoring and of
-- monitoring_fallback, and the organisation of every inserted row was
-- checked by row-level security on native partitions (its (SELECT
-- app.org_id()) once per statement) but, on TimescaleDB hypertables, where
-- row-level security and compression exclude each other, by the row trigger
-- monitoring.check_insert_organization (00014/00017), which verified the
-- signed tenant context (an HMAC in plpgsql) for EVERY row: API ingest ran
-- at 0.155x native partitions. A statement trigger alone would not do:
-- TimescaleDB copies the hypertable's grants to every chunk, so the ingest
-- role could insert into a chunk directly, and it clones row triggers onto
-- chunks but not statement triggers.
--
-- Now the ingest role inserts only through these SECURITY DEFINER functions
-- of the owner, one per series and one for the re-sync, each of which
-- checks once per call:
--   * the schema: 'monitoring' or 'monitoring_fallback' only, else 22023;
--     the re-sync's table: one of monitoring.retention only, else 22023;
--   * the size: at most 10,000 rows per series call (5,000 per re-sync
--     call), else 22023 naming the bound; the column arrays of one call of
--     the same length, else 22023;
--   * the organisation: the rows' organisation must be the verified one of
--     the transaction (app.org_id(), once), else 42501 with row-level
--     security's message; the re-sync checks every row of its chunk in one
--     set-based query.
-- The insert is static SQL per schema branch (plans cached per session),
-- INSERT ... SELECT ... FROM unnest(...) ON CONFLICT DO NOTHING, and the
-- function returns the number of rows it inserted. A data error of the
-- rows (SQLSTATE classes 22 and 23: a CHECK, a NOT NULL, a missing daily
-- partition) propagates unchanged, with its column and constraint, so that
-- ingest still locates the refused event.
--
-- So staff_ingest loses INSERT on the ten parents. On TimescaleDB a REVOKE
-- on a hypertable is passed on to its existing chunks (checked on 2.28.3)
-- and new chunks copy the hypertable's grants, so no chunk carries a
-- runtime-role privilege any more; the loop below revokes on the existing
-- chunks explicitly all the same, for a database whose chunk grants were
-- changed by hand. The row triggers go (DROP TRIGGER on a hypertable drops
-- its chunks' clones, checked on 2.28.3), and with them
-- monitoring.check_insert_organization, which nothing else uses.
--
-- The native row-level security INSERT policies (tenant_insert, 00014) are
-- kept: the owner, whose functions now do every insert, bypasses them
-- (enabled, not forced), so they cost nothing, and should a later grant
-- give a runtime role INSERT again they still hold it to the verified
-- organisation (defence in depth). Hypertables have no such second line,
-- as before: no runtime role holds any privilege on them but through
-- monitoring_read's views.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION monitoring.insert_active_windows(
    p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[],
    p_computer_uids text[], p_user_sids text[], p_window_titles text[], p_process_names text[], p_urls text[],
    p_datetimes timestamptz[], p_durations integer[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n integer := coalesce(cardinality(p_ids), 0);
    inserted integer;
BEGIN
    IF p_schema IS NULL OR p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'insert_active_windows: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n > 10000 THEN
        RAISE EXCEPTION 'insert_active_windows: % rows at once, at most 10000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_seqs), 0) <> n OR coalesce(cardinality(p_agent_uids), 0) <> n
       OR coalesce(cardinality(p_computer_uids), 0) <> n OR coalesce(cardinality(p_user_sids), 0) <> n
       OR coalesce(cardinality(p_window_titles), 0) <> n OR coalesce(cardinality(p_process_names), 0) <> n
       OR coalesce(cardinality(p_urls), 0) <> n OR coalesce(cardinality(p_datetimes), 0) <> n
       OR coalesce(cardinality(p_durations), 0) <> n THEN
        RAISE EXCEPTION 'insert_active_windows: column arrays of unequal length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_org IS NULL OR p_org IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "active_windows"'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_schema = 'monitoring' THEN
        INSERT INTO monitoring.active_windows
            (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
        SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.window_title, t.process_name, t.url, t.datetime, t.duration_seconds
        FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_window_titles, p_process_names, p_urls, p_datetimes, p_durations)
            AS t(id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO monitoring_fallback.active_windows
            (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
        SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.window_title, t.process_name, t.url, t.datetime, t.duration_seconds
        FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_window_titles, p_process_names, p_urls, p_datetimes, p_durations)
            AS t(id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
        ON CONFLICT DO NOTHING;
    END IF;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END $$;

CREATE FUNCTION monitoring.insert_visited_sites(
    p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[],
    p_computer_uids text[], p_user_sids text[], p_urls text[], p_titles text[], p_datetimes timestamptz[],
    p_durations integer[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n integer := coalesce(cardinality(p_ids), 0);
    inserted integer;
BEGIN
    IF p_schema IS NULL OR p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'insert_visited_sites: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n > 10000 THEN
        RAISE EXCEPTION 'insert_visited_sites: % rows at once, at most 10000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_seqs), 0) <> n OR coalesce(cardinality(p_agent_uids), 0) <> n
       OR coalesce(cardinality(p_computer_uids), 0) <> n OR coalesce(cardinality(p_user_sids), 0) <> n
       OR coalesce(cardinality(p_urls), 0) <> n OR coalesce(cardinality(p_titles), 0) <> n
       OR coalesce(cardinality(p_datetimes), 0) <> n OR coalesce(cardinality(p_durations), 0) <> n THEN
        RAISE EXCEPTION 'insert_visited_sites: column arrays of unequal length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_org IS NULL OR p_org IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "visited_sites"'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_schema = 'monitoring' THEN
        INSERT INTO monitoring.visited_sites
            (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
        SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.url, t.title, t.datetime, t.duration_seconds
        FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_urls, p_titles, p_datetimes, p_durations)
            AS t(id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO monitoring_fallback.visited_sites
            (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
        SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.url, t.title, t.datetime, t.duration_seconds
        FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_urls, p_titles, p_datetimes, p_durations)
            AS t(id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
        ON CONFLICT DO NOTHING;
    END IF;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END $$;

CREATE FUNCTION monitoring.insert_user_sessions(
    p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[],
    p_computer_uids text[], p_user_sids text[], p_session_types text[], p_datetimes timestamptz[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n integer := coalesce(cardinality(p_ids), 0);
    inserted integer;
BEGIN
    IF p_schema IS NULL OR p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'insert_user_sessions: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n > 10000 THEN
        RAISE EXCEPTION 'insert_user_sessions: % rows at once, at most 10000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_seqs), 0) <> n OR coalesce(cardinality(p_agent_uids), 0) <> n
       OR coalesce(cardinality(p_computer_uids), 0) <> n OR coalesce(cardinality(p_user_sids), 0) <> n
       OR coalesce(cardinality(p_session_types), 0) <> n OR coalesce(cardinality(p_datetimes), 0) <> n THEN
        RAISE EXCEPTION 'insert_user_sessions: column arrays of unequal length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_org IS NULL OR p_org IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "user_sessions"'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_schema = 'monitoring' THEN
        INSERT INTO monitoring.user_sessions
            (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
        SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.session_type, t.datetime
        FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_session_types, p_datetimes)
            AS t(id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO monitoring_fallback.user_sessions
            (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
        SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.session_type, t.datetime
        FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_session_types, p_datetimes)
            AS t(id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
        ON CONFLICT DO NOTHING;
    END IF;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END $$;

CREATE FUNCTION monitoring.insert_screenshots(
    p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[],
    p_computer_uids text[], p_user_sids text[], p_file_paths text[], p_file_sizes bigint[], p_sha256s text[],
    p_datetimes timestamptz[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n integer := coalesce(cardinality(p_ids), 0);
    inserted integer;
BEGIN
    IF p_schema IS NULL OR p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'insert_screenshots: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n > 10000 THEN
        RAISE EXCEPTION 'insert_screenshots: % rows at once, at most 10000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_seqs), 0) <> n OR coalesce(cardinality(p_agent_uids), 0) <> n
       OR coalesce(cardinality(p_computer_uids), 0) <> n OR coalesce(cardinality(p_user_sids), 0) <> n
       OR coalesce(cardinality(p_file_paths), 0) <> n OR coalesce(cardinality(p_file_sizes), 0) <> n
       OR coalesce(cardinality(p_sha256s), 0) <> n OR coalesce(cardinality(p_datetimes), 0) <> n THEN
        RAISE EXCEPTION 'insert_screenshots: column arrays of unequal length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_org IS NULL OR p_org IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "screenshots"'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_schema = 'monitoring' THEN
        INSERT INTO monitoring.screenshots
            (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
        SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.file_path, t.file_size, t.sha256, t.datetime
        FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_file_paths, p_file_sizes, p_sha256s, p_datetimes)
            AS t(id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO monitoring_fallback.screenshots
            (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
        SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.file_path, t.file_size, t.sha256, t.datetime
        FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_file_paths, p_file_sizes, p_sha256s, p_datetimes)
            AS t(id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
        ON CONFLICT DO NOTHING;
    END IF;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END $$;

CREATE FUNCTION monitoring.insert_device_events(
    p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_device_ids bigint[],
    p_device_serials text[], p_datetimes timestamptz[], p_employee_numbers text[], p_card_numbers text[],
    p_doors integer[], p_major_codes integer[], p_minor_codes integer[], p_verify_modes text[],
    p_directions text[]) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n integer := coalesce(cardinality(p_ids), 0);
    inserted integer;
BEGIN
    IF p_schema IS NULL OR p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'insert_device_events: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n > 10000 THEN
        RAISE EXCEPTION 'insert_device_events: % rows at once, at most 10000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_seqs), 0) <> n OR coalesce(cardinality(p_device_ids), 0) <> n
       OR coalesce(cardinality(p_device_serials), 0) <> n OR coalesce(cardinality(p_datetimes), 0) <> n
       OR coalesce(cardinality(p_employee_numbers), 0) <> n OR coalesce(cardinality(p_card_numbers), 0) <> n
       OR coalesce(cardinality(p_doors), 0) <> n OR coalesce(cardinality(p_major_codes), 0) <> n
       OR coalesce(cardinality(p_minor_codes), 0) <> n OR coalesce(cardinality(p_verify_modes), 0) <> n
       OR coalesce(cardinality(p_directions), 0) <> n THEN
        RAISE EXCEPTION 'insert_device_events: column arrays of unequal length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_org IS NULL OR p_org IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "device_events"'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_schema = 'monitoring' THEN
        INSERT INTO monitoring.device_events
            (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door,
             major_code, minor_code, verify_mode, direction)
        SELECT t.id, p_org, p_gateway, t.seq, t.device_id, t.device_serial, t.datetime, t.employee_number, t.card_number, t.door,
               t.major_code, t.minor_code, t.verify_mode, t.direction
        FROM unnest(p_ids, p_seqs, p_device_ids, p_device_serials, p_datetimes, p_employee_numbers, p_card_numbers, p_doors,
                    p_major_codes, p_minor_codes, p_verify_modes, p_directions)
            AS t(id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction)
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO monitoring_fallback.device_events
            (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door,
             major_code, minor_code, verify_mode, direction)
        SELECT t.id, p_org, p_gateway, t.seq, t.device_id, t.device_serial, t.datetime, t.employee_number, t.card_number, t.door,
               t.major_code, t.minor_code, t.verify_mode, t.direction
        FROM unnest(p_ids, p_seqs, p_device_ids, p_device_serials, p_datetimes, p_employee_numbers, p_card_numbers, p_doors,
                    p_major_codes, p_minor_codes, p_verify_modes, p_directions)
            AS t(id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction)
        ON CONFLICT DO NOTHING;
    END IF;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END $$;

-- The re-sync's copy of one verified fallback chunk into the store: rows of
-- p_table as monitoring.fallback_chunk returns them (a JSON array of whole
-- rows, every column), at most 5,000, every one of the verified
-- organisation; the number inserted (duplicates skipped).
CREATE FUNCTION monitoring.resync_insert(p_table text, p_rows jsonb) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    org bigint := app.org_id();
    n integer;
    foreign_rows bigint;
    inserted integer;
BEGIN
    IF p_table IS NULL OR p_table NOT IN (SELECT table_name FROM monitoring.retention) THEN
        RAISE EXCEPTION 'resync_insert: unknown table %', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(p_rows) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'resync_insert: the rows must be a JSON array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    n := jsonb_array_length(p_rows);
    IF n > 5000 THEN
        RAISE EXCEPTION 'resync_insert: % rows at once, at most 5000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The rows as they will be inserted (the same conversion), each of the
    -- verified organisation.
    IF org IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FILTER (WHERE r.organization_id IS DISTINCT FROM $2)
            FROM jsonb_populate_recordset(NULL::monitoring.%I, $1) r', p_table)
            INTO foreign_rows USING p_rows, org;
    END IF;
    IF org IS NULL OR foreign_rows > 0 THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "%"', p_table
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('INSERT INTO monitoring.%1$I SELECT * FROM jsonb_populate_recordset(NULL::monitoring.%1$I, $1)
        ON CONFLICT DO NOTHING', p_table) USING p_rows;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END $$;

REVOKE ALL ON FUNCTION
    monitoring.insert_active_windows(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], text[], text[], timestamptz[], integer[]),
    monitoring.insert_visited_sites(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], text[], timestamptz[], integer[]),
    monitoring.insert_user_sessions(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], timestamptz[]),
    monitoring.insert_screenshots(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], bigint[], text[], timestamptz[]),
    monitoring.insert_device_events(text, bigint, uuid, uuid[], bigint[], bigint[], text[], timestamptz[], text[], text[], integer[], integer[], integer[], text[], text[]),
    monitoring.resync_insert(text, jsonb)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    monitoring.insert_active_windows(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], text[], text[], timestamptz[], integer[]),
    monitoring.insert_visited_sites(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], text[], timestamptz[], integer[]),
    monitoring.insert_user_sessions(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], timestamptz[]),
    monitoring.insert_screenshots(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], bigint[], text[], timestamptz[]),
    monitoring.insert_device_events(text, bigint, uuid, uuid[], bigint[], bigint[], text[], timestamptz[], text[], text[], integer[], integer[], integer[], text[], text[]),
    monitoring.resync_insert(text, jsonb)
TO staff_ingest;

REVOKE INSERT ON monitoring.active_windows, monitoring.visited_sites, monitoring.screenshots,
    monitoring.user_sessions, monitoring.device_events,
    monitoring_fallback.active_windows, monitoring_fallback.visited_sites, monitoring_fallback.screenshots,
    monitoring_fallback.user_sessions, monitoring_fallback.device_events
FROM staff_ingest;

DO $do$
DECLARE
    t text;
    rel text;
BEGIN
    FOR t IN SELECT table_name FROM monitoring.retention ORDER BY table_name LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS check_insert_organization ON monitoring.%I', t);
    END LOOP;
    IF monitoring.storage_kind() = 'timescaledb' THEN
        -- The hypertables' chunks (the REVOKE above reached them already).
        FOR rel IN EXECUTE $q$
            SELECT format('%I.%I', ch.schema_name, ch.table_name)
            FROM _timescaledb_catalog.hypertable h
            JOIN _timescaledb_catalog.chunk ch ON ch.hypertable_id = h.id
            WHERE h.schema_name = 'monitoring'
              AND to_regclass(format('%I.%I', ch.schema_name, ch.table_name)) IS NOT NULL
            ORDER BY 1$q$
        LOOP
            EXECUTE format('REVOKE ALL ON %s FROM staff_ingest, staff_dashboard, staff_admin', rel);
        END LOOP;
    END IF;
END $do$;
DROP FUNCTION monitoring.check_insert_organization();
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
-- 00017's check, and 00014's row triggers on the hypertables.
CREATE FUNCTION monitoring.check_insert_organization() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF NEW.organization_id IS DISTINCT FROM app.org_id()
       AND NOT (SELECT r.rolsuper OR r.rolbypassrls OR r.rolname = 'staff_owner'
                  FROM pg_roles r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "%"', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION monitoring.check_insert_organization() FROM PUBLIC;

GRANT INSERT ON monitoring.active_windows, monitoring.visited_sites, monitoring.screenshots,
    monitoring.user_sessions, monitoring.device_events,
    monitoring_fallback.active_windows, monitoring_fallback.visited_sites, monitoring_fallback.screenshots,
    monitoring_fallback.user_sessions, monitoring_fallback.device_events
TO staff_ingest;

DO $do$
DECLARE
    t text;
    rel text;
BEGIN
    IF monitoring.storage_kind() <> 'timescaledb' THEN
        RETURN;
    END IF;
    FOR t IN SELECT table_name FROM monitoring.retention ORDER BY table_name LOOP
        EXECUTE format('CREATE TRIGGER check_insert_organization BEFORE INSERT ON monitoring.%I
            FOR EACH ROW EXECUTE FUNCTION monitoring.check_insert_organization()', t);
    END LOOP;
    -- The GRANT above is passed on to the compressed hypertables and their
    -- chunks: close them again, as 00019 did.
    FOR rel IN EXECUTE $q$
        SELECT format('%I.%I', c.schema_name, c.table_name)
        FROM _timescaledb_catalog.hypertable h
        JOIN _timescaledb_catalog.hypertable c ON c.id = h.compressed_hypertable_id
        WHERE h.schema_name = 'monitoring'
        UNION ALL
        SELECT format('%I.%I', ch.schema_name, ch.table_name)
        FROM _timescaledb_catalog.hypertable h
        JOIN _timescaledb_catalog.chunk ch ON ch.hypertable_id = h.compressed_hypertable_id
        WHERE h.schema_name = 'monitoring'
        ORDER BY 1$q$
    LOOP
        EXECUTE format('REVOKE ALL ON %s FROM staff_ingest, staff_dashboard, staff_admin', rel);
    END LOOP;
END $do$;

DROP FUNCTION monitoring.resync_insert(text, jsonb);
DROP FUNCTION monitoring.insert_device_events(text, bigint, uuid, uuid[], bigint[], bigint[], text[], timestamptz[], text[], text[], integer[], integer[], integer[], text[], text[]);
DROP FUNCTION monitoring.insert_screenshots(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], bigint[], text[], timestamptz[]);
DROP FUNCTION monitoring.insert_user_sessions(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], timestamptz[]);
DROP FUNCTION monitoring.insert_visited_sites(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], text[], timestamptz[], integer[]);
DROP FUNCTION monitoring.insert_active_windows(text, bigint, uuid, uuid[], bigint[], text[], text[], text[], text[], text[], text[], timestamptz[], integer[]);
-- +goose StatementEnd
