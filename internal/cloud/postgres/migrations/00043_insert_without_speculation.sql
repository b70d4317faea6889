-- The five series' insert functions without speculative insertion on the
-- common path (issue 17: the Agent API's PostgreSQL CPU per event;
-- docs/benchmarks.md "Ingest CPU per event").
--
-- Before: each function (00020; active_windows and visited_sites with
-- 00026's hour marks) ran INSERT ... SELECT FROM unnest(a, b, ...) ... ON
-- CONFLICT DO NOTHING. Per row that is a speculative insertion: a probe of
-- the primary key, the heap tuple written with a speculative token, the key
-- inserted, the token confirmed (a second WAL record) and a speculative lock
-- taken and released; and unnest(a, b, ...) in FROM materialises each array
-- in a tuplestore before the rows are formed. Measured per row in the
-- backend (1,000-row calls into a table with the series' three indexes):
-- ON CONFLICT costs about a third of the insert.
--
-- Now each function first runs the plain INSERT (no ON CONFLICT), with the
-- arrays unnested in the select list (evaluated in lockstep, no
-- tuplestore; the arrays' lengths are checked equal above, so no row is
-- padded with NULLs), inside a block that catches unique_violation; only
-- when a row of the call is already stored (a retried or re-formed batch: a
-- duplicate, rare) is the block's subtransaction rolled back and the call's
-- rows inserted again with ON CONFLICT DO NOTHING, exactly as before. So:
--   * per-event dedupe is unchanged: every row that is not stored is
--     inserted, every stored one skipped, and the function returns how many
--     it inserted (what the first statement inserted, or, after a
--     duplicate, what the second did; the first one's rows are rolled back);
--   * a concurrent call inserting the same event waits for the other
--     transaction as before (the unique check waits on its uncommitted
--     key), then either inserts (it rolled back) or falls back (it
--     committed): no event is stored twice. Rows still go in in the order
--     of the arrays (ingest sorts them by event id), so two calls sharing
--     events take their key locks in the same order, as before;
--   * every other error (SQLSTATE classes 22 and 23 but 23505: a CHECK, a
--     NOT NULL, a missing daily partition) propagates unchanged, with its
--     column and constraint, as before; 23505 itself never left these
--     functions (ON CONFLICT DO NOTHING without a target absorbed every
--     unique conflict, and the fallback statement still does);
--   * the checks (schema, size, equal lengths, the verified organisation),
--     SECURITY DEFINER, the owner, search_path and the grants are
--     unchanged (CREATE OR REPLACE keeps owner and privileges); on
--     TimescaleDB hypertables the same statements run (a chunk's unique
--     index raises 23505 as a partition's does).
-- The cost of a duplicate: the rows the first statement inserted before
-- the conflict are written and rolled back (dead tuples for vacuum), then
-- the call is redone with ON CONFLICT. A plpgsql block with an EXCEPTION
-- clause is one subtransaction per call (at most five per batch, well under
-- the 64 a backend caches).

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION monitoring.insert_active_windows(
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
        BEGIN
            WITH ins AS (
                INSERT INTO monitoring.active_windows
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_window_titles), unnest(p_process_names), unnest(p_urls),
                       unnest(p_datetimes), unnest(p_durations)
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        EXCEPTION WHEN unique_violation THEN
            WITH ins AS (
                INSERT INTO monitoring.active_windows
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_window_titles), unnest(p_process_names), unnest(p_urls),
                       unnest(p_datetimes), unnest(p_durations)
                ON CONFLICT DO NOTHING
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        END;
    ELSE
        BEGIN
            WITH ins AS (
                INSERT INTO monitoring_fallback.active_windows
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_window_titles), unnest(p_process_names), unnest(p_urls),
                       unnest(p_datetimes), unnest(p_durations)
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        EXCEPTION WHEN unique_violation THEN
            WITH ins AS (
                INSERT INTO monitoring_fallback.active_windows
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_window_titles), unnest(p_process_names), unnest(p_urls),
                       unnest(p_datetimes), unnest(p_durations)
                ON CONFLICT DO NOTHING
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        END;
    END IF;
    RETURN inserted;
END $$;

CREATE OR REPLACE FUNCTION monitoring.insert_visited_sites(
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
        BEGIN
            WITH ins AS (
                INSERT INTO monitoring.visited_sites
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_urls), unnest(p_titles), unnest(p_datetimes), unnest(p_durations)
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        EXCEPTION WHEN unique_violation THEN
            WITH ins AS (
                INSERT INTO monitoring.visited_sites
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_urls), unnest(p_titles), unnest(p_datetimes), unnest(p_durations)
                ON CONFLICT DO NOTHING
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        END;
    ELSE
        BEGIN
            WITH ins AS (
                INSERT INTO monitoring_fallback.visited_sites
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_urls), unnest(p_titles), unnest(p_datetimes), unnest(p_durations)
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        EXCEPTION WHEN unique_violation THEN
            WITH ins AS (
                INSERT INTO monitoring_fallback.visited_sites
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_urls), unnest(p_titles), unnest(p_datetimes), unnest(p_durations)
                ON CONFLICT DO NOTHING
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        END;
    END IF;
    RETURN inserted;
END $$;

CREATE OR REPLACE FUNCTION monitoring.insert_user_sessions(
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
        BEGIN
            INSERT INTO monitoring.user_sessions
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_session_types), unnest(p_datetimes);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring.user_sessions
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_session_types), unnest(p_datetimes)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    ELSE
        BEGIN
            INSERT INTO monitoring_fallback.user_sessions
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_session_types), unnest(p_datetimes);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring_fallback.user_sessions
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_session_types), unnest(p_datetimes)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    END IF;
    RETURN inserted;
END $$;

CREATE OR REPLACE FUNCTION monitoring.insert_screenshots(
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
        BEGIN
            INSERT INTO monitoring.screenshots
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_file_paths), unnest(p_file_sizes), unnest(p_sha256s),
                   unnest(p_datetimes);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring.screenshots
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_file_paths), unnest(p_file_sizes), unnest(p_sha256s),
                   unnest(p_datetimes)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    ELSE
        BEGIN
            INSERT INTO monitoring_fallback.screenshots
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_file_paths), unnest(p_file_sizes), unnest(p_sha256s),
                   unnest(p_datetimes);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring_fallback.screenshots
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_file_paths), unnest(p_file_sizes), unnest(p_sha256s),
                   unnest(p_datetimes)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    END IF;
    RETURN inserted;
END $$;

CREATE OR REPLACE FUNCTION monitoring.insert_device_events(
    p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_device_ids bigint[],
    p_device_serials text[], p_datetimes timestamptz[], p_employee_numbers text[], p_card_numbers text[], p_doors integer[],
    p_major_codes integer[], p_minor_codes integer[], p_verify_modes text[], p_directions text[]) RETURNS integer
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
        BEGIN
            INSERT INTO monitoring.device_events
                (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_device_ids), unnest(p_device_serials),
                   unnest(p_datetimes), unnest(p_employee_numbers), unnest(p_card_numbers), unnest(p_doors),
                   unnest(p_major_codes), unnest(p_minor_codes), unnest(p_verify_modes), unnest(p_directions);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring.device_events
                (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_device_ids), unnest(p_device_serials),
                   unnest(p_datetimes), unnest(p_employee_numbers), unnest(p_card_numbers), unnest(p_doors),
                   unnest(p_major_codes), unnest(p_minor_codes), unnest(p_verify_modes), unnest(p_directions)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    ELSE
        BEGIN
            INSERT INTO monitoring_fallback.device_events
                (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_device_ids), unnest(p_device_serials),
                   unnest(p_datetimes), unnest(p_employee_numbers), unnest(p_card_numbers), unnest(p_doors),
                   unnest(p_major_codes), unnest(p_minor_codes), unnest(p_verify_modes), unnest(p_directions);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring_fallback.device_events
                (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_device_ids), unnest(p_device_serials),
                   unnest(p_datetimes), unnest(p_employee_numbers), unnest(p_card_numbers), unnest(p_doors),
                   unnest(p_major_codes), unnest(p_minor_codes), unnest(p_verify_modes), unnest(p_directions)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    END IF;
    RETURN inserted;
END $$;

-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
-- The functions as 00020 and 00026 left them.
CREATE OR REPLACE FUNCTION monitoring.insert_active_windows(p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[], p_computer_uids text[], p_user_sids text[], p_window_titles text[], p_process_names text[], p_urls text[], p_datetimes timestamp with time zone[], p_durations integer[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
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
        WITH ins AS (
            INSERT INTO monitoring.active_windows
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
            SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.window_title, t.process_name, t.url, t.datetime, t.duration_seconds
            FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_window_titles, p_process_names, p_urls, p_datetimes, p_durations)
                AS t(id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
            ON CONFLICT DO NOTHING
            RETURNING user_sid, datetime, duration_seconds
        ), mark AS (
            INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
            SELECT DISTINCT p_org, i.user_sid, h
            FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                        date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                        interval '1 hour') h
            ORDER BY 1, 2, 3
            ON CONFLICT DO NOTHING
        )
        SELECT count(*) INTO inserted FROM ins;
    ELSE
        WITH ins AS (
            INSERT INTO monitoring_fallback.active_windows
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
            SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.window_title, t.process_name, t.url, t.datetime, t.duration_seconds
            FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_window_titles, p_process_names, p_urls, p_datetimes, p_durations)
                AS t(id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
            ON CONFLICT DO NOTHING
            RETURNING user_sid, datetime, duration_seconds
        ), mark AS (
            INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
            SELECT DISTINCT p_org, i.user_sid, h
            FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                        date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                        interval '1 hour') h
            ORDER BY 1, 2, 3
            ON CONFLICT DO NOTHING
        )
        SELECT count(*) INTO inserted FROM ins;
    END IF;
    RETURN inserted;
END $$;
CREATE OR REPLACE FUNCTION monitoring.insert_device_events(p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_device_ids bigint[], p_device_serials text[], p_datetimes timestamp with time zone[], p_employee_numbers text[], p_card_numbers text[], p_doors integer[], p_major_codes integer[], p_minor_codes integer[], p_verify_modes text[], p_directions text[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
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
CREATE OR REPLACE FUNCTION monitoring.insert_screenshots(p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[], p_computer_uids text[], p_user_sids text[], p_file_paths text[], p_file_sizes bigint[], p_sha256s text[], p_datetimes timestamp with time zone[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
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
CREATE OR REPLACE FUNCTION monitoring.insert_user_sessions(p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[], p_computer_uids text[], p_user_sids text[], p_session_types text[], p_datetimes timestamp with time zone[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
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
CREATE OR REPLACE FUNCTION monitoring.insert_visited_sites(p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[], p_computer_uids text[], p_user_sids text[], p_urls text[], p_titles text[], p_datetimes timestamp with time zone[], p_durations integer[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
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
        WITH ins AS (
            INSERT INTO monitoring.visited_sites
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
            SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.url, t.title, t.datetime, t.duration_seconds
            FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_urls, p_titles, p_datetimes, p_durations)
                AS t(id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
            ON CONFLICT DO NOTHING
            RETURNING user_sid, datetime, duration_seconds
        ), mark AS (
            INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
            SELECT DISTINCT p_org, i.user_sid, h
            FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                        date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                        interval '1 hour') h
            ORDER BY 1, 2, 3
            ON CONFLICT DO NOTHING
        )
        SELECT count(*) INTO inserted FROM ins;
    ELSE
        WITH ins AS (
            INSERT INTO monitoring_fallback.visited_sites
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
            SELECT t.id, p_org, p_gateway, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.url, t.title, t.datetime, t.duration_seconds
            FROM unnest(p_ids, p_seqs, p_agent_uids, p_computer_uids, p_user_sids, p_urls, p_titles, p_datetimes, p_durations)
                AS t(id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
            ON CONFLICT DO NOTHING
            RETURNING user_sid, datetime, duration_seconds
        ), mark AS (
            INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
            SELECT DISTINCT p_org, i.user_sid, h
            FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                        date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                        interval '1 hour') h
            ORDER BY 1, 2, 3
            ON CONFLICT DO NOTHING
        )
        SELECT count(*) INTO inserted FROM ins;
    END IF;
    RETURN inserted;
END $$;
-- +goose StatementEnd
