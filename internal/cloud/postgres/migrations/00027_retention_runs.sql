-- Retention that runs (issue 15, part 4): per-organisation horizons from
-- retention_policies, executed by internal/cloud/retention as staff_ingest
-- through the SECURITY DEFINER functions below, one replica at a time.
--
-- * retention_policies.resource_type names one of the five series
--   (monitoring.retention's table names): a foreign key refuses any other.
--   The singular names the seed data used ('screenshot', …) become plural.
-- * The effective horizon of (organisation, series) is the organisation's
--   active policy row (the shortest when several are active; 'archive' wins
--   a tie), else the platform default's (organization_id NULL), else the
--   global monitoring.retention days; a policy longer than the global days
--   is capped by them (the global drop removes whole days past them anyway).
-- * monitoring.retention_effective (a view no runtime role reads) resolves
--   them for every (organisation, series);
-- * monitoring.retention_horizons() lists the (organisation, series) pairs
--   handled row by row: a horizon shorter than the global one, or the
--   archive action (archiving needs the rows before they are deleted, so
--   such an organisation's rows go row by row even at the global horizon).
--   Every other row goes with its whole day when monitoring.
--   drop_expired_partitions() (or apply_retention under TimescaleDB) drops
--   the partitions or chunks wholly past the global horizon.
-- * monitoring.retention_delete(table, organisation, limit) deletes, as
--   DELETE … RETURNING, at most limit (clamped to [1, 10000]) of the
--   organisation's rows past the horizon it computes itself (no caller
--   time), from monitoring.<table> and monitoring_fallback.<table>, and
--   returns them (the archive and the screenshot files need them).
-- * monitoring.retention_preview() and monitoring.retention_expired_partitions()
--   count what a run would remove (dry-run) and what a drop removes.
-- * monitoring.retention_runs records every run. retention_run_begin takes
--   the retention advisory lock on the caller's session (session-level, so a
--   killed process's lock goes with its connection): without it the run is
--   recorded 'skipped'; with it, runs left 'running' by a killed process are
--   marked 'failed', then a 'running' row is inserted. retention_run_progress
--   adds one series' counts, retention_run_finish ends the run and releases
--   the lock. The delete, progress and finish functions refuse a session
--   that does not hold the lock, so two runners never interleave.

-- +goose Up
-- +goose StatementBegin
UPDATE public.retention_policies SET resource_type = CASE resource_type
    WHEN 'active_window' THEN 'active_windows' WHEN 'visited_site' THEN 'visited_sites'
    WHEN 'screenshot' THEN 'screenshots' WHEN 'user_session' THEN 'user_sessions'
    WHEN 'device_event' THEN 'device_events' ELSE resource_type END
 WHERE resource_type IN ('active_window', 'visited_site', 'screenshot', 'user_session', 'device_event');

-- NOT VALID, then validated when no older row names something else (a
-- database with such rows keeps them, refused for every new write; the
-- retention job ignores them).
ALTER TABLE public.retention_policies ADD CONSTRAINT retention_policies_resource_type_fkey
    FOREIGN KEY (resource_type) REFERENCES monitoring.retention (table_name) NOT VALID;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.retention_policies p
                    WHERE NOT EXISTS (SELECT 1 FROM monitoring.retention r WHERE r.table_name = p.resource_type)) THEN
        ALTER TABLE public.retention_policies VALIDATE CONSTRAINT retention_policies_resource_type_fkey;
    END IF;
END $$;
CREATE INDEX retention_policies_lookup ON public.retention_policies (resource_type, organization_id) WHERE is_active;

CREATE TABLE monitoring.retention_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    dry_run     boolean NOT NULL,
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    -- Per series: rows deleted (or, in a dry run, that would be).
    rows        jsonb NOT NULL DEFAULT '{}',
    files       bigint NOT NULL DEFAULT 0,
    bytes       bigint NOT NULL DEFAULT 0,
    archived    integer NOT NULL DEFAULT 0,
    error       text CHECK (length(error) <= 2000),
    CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX retention_runs_recent ON monitoring.retention_runs (started_at DESC);
CREATE INDEX retention_runs_running ON monitoring.retention_runs (id) WHERE status = 'running';
REVOKE ALL ON monitoring.retention_runs FROM PUBLIC;

-- Every (organisation, series) with its effective days (capped by the
-- global days), action, and whether it is deleted row by row (see the
-- header). A view, so that a filter on one pair (retention_delete) reaches
-- the indexes; no runtime role may read it.
CREATE VIEW monitoring.retention_effective AS
    SELECT o.id AS organization_id, r.table_name,
           least(coalesce(own.retention_days, def.retention_days, r.days), r.days) AS days,
           coalesce(own.action, def.action, 'delete') AS action,
           (coalesce(own.retention_days, def.retention_days, r.days) < r.days
            OR coalesce(own.action, def.action, 'delete') = 'archive') AS row_by_row
    FROM public.organizations o
    CROSS JOIN monitoring.retention r
    LEFT JOIN LATERAL (
        SELECT p.retention_days, p.action FROM public.retention_policies p
         WHERE p.organization_id = o.id AND p.resource_type = r.table_name AND p.is_active
         ORDER BY p.retention_days, p.action = 'archive' DESC, p.created_at, p.id LIMIT 1) own ON true
    LEFT JOIN LATERAL (
        SELECT p.retention_days, p.action FROM public.retention_policies p
         WHERE p.organization_id IS NULL AND p.resource_type = r.table_name AND p.is_active
         ORDER BY p.retention_days, p.action = 'archive' DESC, p.created_at, p.id LIMIT 1) def ON true;
REVOKE ALL ON monitoring.retention_effective FROM PUBLIC;

-- The (organisation, series) pairs deleted row by row, with their days, the
-- action and the horizon (now() - days).
CREATE FUNCTION monitoring.retention_horizons()
RETURNS TABLE (organization_id bigint, table_name text, days integer, action text, horizon timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT e.organization_id, e.table_name, e.days, e.action, now() - make_interval(days => e.days)
    FROM monitoring.retention_effective e
    WHERE e.row_by_row
    ORDER BY 1, 2
$$;

-- Whether this session holds the retention lock (retention_run_begin).
-- Inlined in the functions below as:
--   EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
--           AND l.classid = 1380270926 AND l.objid = 27 AND l.objsubid = 2 AND l.granted)

CREATE FUNCTION monitoring.retention_run_begin(p_dry_run boolean)
RETURNS TABLE (run_id bigint, acquired boolean, interrupted integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n integer := 0;
    id bigint;
BEGIN
    IF p_dry_run IS NULL THEN
        RAISE EXCEPTION 'retention_run_begin: dry_run is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_try_advisory_lock(1380270926, 27) THEN
        INSERT INTO monitoring.retention_runs (dry_run, status, finished_at, error)
        VALUES (p_dry_run, 'skipped', clock_timestamp(), 'another replica holds the retention lock')
        RETURNING retention_runs.id INTO id;
        RETURN QUERY SELECT id, false, 0;
        RETURN;
    END IF;
    -- The lock is ours, so no run is in progress: a 'running' row is a
    -- killed process's.
    UPDATE monitoring.retention_runs r
       SET status = 'failed', finished_at = clock_timestamp(),
           error = 'interrupted: the process running it stopped before it finished'
     WHERE r.status = 'running';
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO monitoring.retention_runs (dry_run, status) VALUES (p_dry_run, 'running')
    RETURNING retention_runs.id INTO id;
    RETURN QUERY SELECT id, true, n;
END $$;

-- Adds one series' counts to the running run p_run (table '' for files,
-- bytes or archives without rows).
CREATE FUNCTION monitoring.retention_run_progress(p_run bigint, p_table text, p_rows bigint, p_files bigint,
    p_bytes bigint, p_archived integer) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
                    AND l.classid = 1380270926 AND l.objid = 27 AND l.objsubid = 2 AND l.granted) THEN
        RAISE EXCEPTION 'retention_run_progress: this session does not hold the retention lock'
            USING ERRCODE = 'lock_not_available';
    END IF;
    IF coalesce(p_table, '') <> '' AND NOT EXISTS (SELECT 1 FROM monitoring.retention r WHERE r.table_name = p_table) THEN
        RAISE EXCEPTION 'retention_run_progress: % is not a time-series table', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF least(p_rows, p_files, p_bytes, p_archived) < 0 THEN
        RAISE EXCEPTION 'retention_run_progress: negative count' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE monitoring.retention_runs r
       SET rows = CASE WHEN coalesce(p_table, '') = '' THEN r.rows
                       ELSE jsonb_set(r.rows, ARRAY[p_table], to_jsonb(coalesce((r.rows ->> p_table)::bigint, 0) + coalesce(p_rows, 0))) END,
           files = r.files + coalesce(p_files, 0), bytes = r.bytes + coalesce(p_bytes, 0),
           archived = r.archived + coalesce(p_archived, 0)
     WHERE r.id = p_run AND r.status = 'running';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'retention_run_progress: run % is not running', p_run USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

-- Ends the running run p_run: failed with p_error when given, succeeded
-- otherwise; releases the retention lock.
CREATE FUNCTION monitoring.retention_run_finish(p_run bigint, p_error text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    st text := CASE WHEN coalesce(p_error, '') = '' THEN 'succeeded' ELSE 'failed' END;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
                    AND l.classid = 1380270926 AND l.objid = 27 AND l.objsubid = 2 AND l.granted) THEN
        RAISE EXCEPTION 'retention_run_finish: this session does not hold the retention lock'
            USING ERRCODE = 'lock_not_available';
    END IF;
    UPDATE monitoring.retention_runs r
       SET status = st, finished_at = clock_timestamp(), error = left(NULLIF(p_error, ''), 2000)
     WHERE r.id = p_run AND r.status = 'running';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'retention_run_finish: run % is not running', p_run USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_unlock(1380270926, 27);
    RETURN st;
END $$;

-- Deletes at most p_limit (clamped to [1, 10000]) of organisation p_org's
-- rows of series p_table older than its horizon (retention_horizons();
-- nothing when the pair is not listed there), oldest first, from
-- monitoring.<table> and then monitoring_fallback.<table>, and returns
-- them: the schema, key, screenshot file and size, and the row as JSON in
-- column order (the archive).
CREATE FUNCTION monitoring.retention_delete(p_table text, p_org bigint, p_limit integer)
RETURNS TABLE (schema_name text, id uuid, datetime timestamptz, file_path text, file_size bigint, row_json json)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    lim integer := least(greatest(coalesce(p_limit, 1), 1), 10000);
    h timestamptz;
    s text;
    n integer;
    shot boolean := p_table = 'screenshots';
BEGIN
    IF NOT EXISTS (SELECT 1 FROM monitoring.retention r WHERE r.table_name = p_table) THEN
        RAISE EXCEPTION 'retention_delete: % is not a time-series table', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
                    AND l.classid = 1380270926 AND l.objid = 27 AND l.objsubid = 2 AND l.granted) THEN
        RAISE EXCEPTION 'retention_delete: this session does not hold the retention lock'
            USING ERRCODE = 'lock_not_available';
    END IF;
    SELECT now() - make_interval(days => e.days) INTO h FROM monitoring.retention_effective e
     WHERE e.organization_id = p_org AND e.table_name = p_table AND e.row_by_row;
    IF h IS NULL THEN
        RETURN;
    END IF;
    FOREACH s IN ARRAY ARRAY['monitoring', 'monitoring_fallback'] LOOP
        EXIT WHEN lim <= 0;
        RETURN QUERY EXECUTE format(
            'WITH d AS (DELETE FROM %1$I.%2$I t WHERE (t.id, t.datetime) IN (
                    SELECT k.id, k.datetime FROM %1$I.%2$I k
                     WHERE k.organization_id = $1 AND k.datetime < $2 ORDER BY k.datetime, k.id LIMIT $3)
                 RETURNING t.*)
             SELECT %1$L::text, d.id, d.datetime, %3$s, %4$s, row_to_json(d) FROM d ORDER BY d.datetime, d.id',
            s, p_table,
            CASE WHEN shot THEN 'd.file_path' ELSE 'NULL::text' END,
            CASE WHEN shot THEN 'd.file_size' ELSE 'NULL::bigint' END)
            USING p_org, h, lim;
        GET DIAGNOSTICS n = ROW_COUNT;
        lim := lim - n;
    END LOOP;
END $$;

-- What the row-by-row deletes would remove now: per listed (organisation,
-- series), the rows past the horizon in both schemas, and for screenshots
-- their distinct files under the organisation's prefix (the only ones
-- retention deletes) and the files' bytes.
CREATE FUNCTION monitoring.retention_preview()
RETURNS TABLE (organization_id bigint, table_name text, rows bigint, files bigint, bytes bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    h record;
BEGIN
    FOR h IN SELECT * FROM monitoring.retention_horizons() LOOP
        IF h.table_name = 'screenshots' THEN
            RETURN QUERY
            WITH u AS (
                SELECT s.file_path, s.file_size FROM monitoring.screenshots s
                 WHERE s.organization_id = h.organization_id AND s.datetime < h.horizon
                UNION ALL
                SELECT f.file_path, f.file_size FROM monitoring_fallback.screenshots f
                 WHERE f.organization_id = h.organization_id AND f.datetime < h.horizon
            ), k AS (
                SELECT DISTINCT ON (u.file_path) u.file_path, u.file_size FROM u
                 WHERE u.file_path LIKE 'screenshots/' || h.organization_id || '/%' ORDER BY u.file_path
            )
            SELECT h.organization_id, h.table_name, (SELECT count(*) FROM u)::bigint, (SELECT count(*) FROM k)::bigint,
                   (SELECT coalesce(sum(k.file_size), 0) FROM k)::bigint;
        ELSE
            RETURN QUERY EXECUTE format(
                'SELECT $1::bigint, $2::text,
                        (SELECT count(*) FROM monitoring.%1$I WHERE organization_id = $1 AND datetime < $3)
                      + (SELECT count(*) FROM monitoring_fallback.%1$I WHERE organization_id = $1 AND datetime < $3),
                        0::bigint, 0::bigint', h.table_name)
                USING h.organization_id, h.table_name, h.horizon;
        END IF;
    END LOOP;
END $$;

-- The partitions (or TimescaleDB chunks) wholly past their series' global
-- retention, as monitoring.drop_expired_partitions() and
-- monitoring.apply_retention() name them, oldest first, at most 1000, with
-- their rows: all of them, and those of organisations without a row-by-row
-- horizon (retention_horizons()), which is what a run that first deletes
-- row by row leaves for the drop.
CREATE FUNCTION monitoring.retention_expired_partitions()
RETURNS TABLE (partition_name text, table_name text, rows bigint, rows_unlisted bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    r record;
    cnt bigint;
    unlisted bigint;
    listed bigint[];
BEGIN
    FOR r IN
        SELECT format('%I.%I', n.nspname, c.relname) AS qualified, n.nspname || '.' || c.relname AS shown,
               ret.table_name
        FROM monitoring.retention ret
        CROSS JOIN unnest(ARRAY['monitoring', 'monitoring_fallback']) AS s(schema_name)
        JOIN pg_inherits i ON i.inhparent = to_regclass(format('%I.%I', s.schema_name, ret.table_name))
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname ~ '_p[0-9]{8}$'
          AND (s.schema_name = 'monitoring_fallback' OR monitoring.storage_kind() = 'partitions')
          AND ((to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC')
              <= now() - make_interval(days => ret.days)
        ORDER BY to_date(right(c.relname, 8), 'YYYYMMDD'), n.nspname, c.relname
        LIMIT 1000
    LOOP
        SELECT coalesce(array_agg(e.organization_id), '{}') INTO listed FROM monitoring.retention_effective e
         WHERE e.table_name = r.table_name AND e.row_by_row;
        EXECUTE format('SELECT count(*), count(*) FILTER (WHERE p.organization_id <> ALL ($1)) FROM %s p', r.qualified)
           INTO cnt, unlisted USING listed;
        RETURN QUERY SELECT r.shown, r.table_name, cnt, unlisted;
    END LOOP;
    IF monitoring.storage_kind() = 'timescaledb' THEN
        FOR r IN EXECUTE
            'SELECT format(''%I.%I'', ch.chunk_schema, ch.chunk_name) AS qualified, ret.table_name
               FROM timescaledb_information.chunks ch
               JOIN monitoring.retention ret ON ret.table_name = ch.hypertable_name
              WHERE ch.hypertable_schema = ''monitoring'' AND ch.range_end <= now() - make_interval(days => ret.days)
              ORDER BY ch.range_end, 1 LIMIT 1000'
        LOOP
            SELECT coalesce(array_agg(e.organization_id), '{}') INTO listed FROM monitoring.retention_effective e
             WHERE e.table_name = r.table_name AND e.row_by_row;
            EXECUTE format('SELECT count(*), count(*) FILTER (WHERE p.organization_id <> ALL ($1)) FROM %s p', r.qualified)
               INTO cnt, unlisted USING listed;
            RETURN QUERY SELECT r.qualified, r.table_name, cnt, unlisted;
        END LOOP;
    END IF;
END $$;

REVOKE ALL ON FUNCTION monitoring.retention_horizons(), monitoring.retention_run_begin(boolean),
    monitoring.retention_run_progress(bigint, text, bigint, bigint, bigint, integer),
    monitoring.retention_run_finish(bigint, text), monitoring.retention_delete(text, bigint, integer),
    monitoring.retention_preview(), monitoring.retention_expired_partitions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.retention_horizons(), monitoring.retention_run_begin(boolean),
    monitoring.retention_run_progress(bigint, text, bigint, bigint, bigint, integer),
    monitoring.retention_run_finish(bigint, text), monitoring.retention_delete(text, bigint, integer),
    monitoring.retention_preview(), monitoring.retention_expired_partitions() TO staff_ingest;
-- The run history (staffctl retention runs reads it as the owner's
-- administrator; the Agent API's runner reads its own run back).
GRANT SELECT ON monitoring.retention_runs TO staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION monitoring.retention_expired_partitions();
DROP FUNCTION monitoring.retention_preview();
DROP FUNCTION monitoring.retention_delete(text, bigint, integer);
DROP FUNCTION monitoring.retention_run_finish(bigint, text);
DROP FUNCTION monitoring.retention_run_progress(bigint, text, bigint, bigint, bigint, integer);
DROP FUNCTION monitoring.retention_run_begin(boolean);
DROP FUNCTION monitoring.retention_horizons();
DROP VIEW monitoring.retention_effective;
DROP TABLE monitoring.retention_runs;
DROP INDEX public.retention_policies_lookup;
ALTER TABLE public.retention_policies DROP CONSTRAINT retention_policies_resource_type_fkey;
-- +goose StatementEnd
