-- Reports (issue 15): the organisation's time zone and report policy, the
-- per-employee-day activity rollups and their incremental maintenance.
--
-- organizations.time_zone: the IANA zone whose local midnights cut the
-- reports' days (DST days are 23 or 25 hours long). A CHECK cannot validate
-- it (a zone lookup is not immutable), so a trigger refuses an unknown name
-- with a check_violation naming the column time_zone (constraint
-- organizations_time_zone_check), on every path that writes it.
-- organizations.report_policy_id: the policy whose activity.idle_seconds,
-- working_hours (start, end, days, grace_minutes) and productivity
-- categories the reports apply; NULL: the defaults (internal/cloud/report).
-- Deleting the policy sets it back to NULL.
--
-- monitoring.activity_dirty: the UTC hours of a user's activity whose
-- rollup must be recomputed. The insert functions of 00020 mark them in the
-- SAME statement as the insert (a data-modifying CTE over the rows actually
-- inserted: duplicates mark nothing), for active_windows and visited_sites,
-- in either schema (the fallback's rows are the same database's), and so
-- does the re-sync's copy into the store; an interval spilling into later
-- hours marks every hour it touches (at most 169: durations are bounded by
-- the protocol at 7 days). user_sessions are not rolled up (the session
-- timeline is always read raw: a few rows a day), so their insert marks
-- nothing. Keys are inserted in key order so that two concurrent batches
-- cannot deadlock on them.
--
-- monitoring.activity_days / activity_day_usage: one row per (organisation,
-- user sid, local day) with the minute-occupancy mask of the day (bit i =
-- minute i since local midnight, most significant bit first in each byte;
-- as many bits as the day has minutes: 1380, 1440 or 1500 in most zones) and the first/last
-- active minute's start/end; one row per (day, kind, process, host) with
-- the seconds of the union of that key's intervals clipped to the day and
-- the number of rows. Regular tables in both engines (a continuous
-- aggregate can neither spread a row over several buckets nor cut days in
-- each organisation's zone). The report engine reads a day from them only
-- when the day is closed, computed in the organisation's current zone and
-- no dirty hour of the sid falls in it; the result is identical to the raw
-- computation.
--
-- The maintainer (Agent API, staff_ingest) holds no privilege on these
-- tables: it claims dirty keys through monitoring.activity_claim (one
-- transaction-scoped advisory lock per (organisation, sid), taken with
-- pg_try_advisory_xact_lock, so that concurrent maintainers skip each
-- other's sids and never recompute one day twice at once; the claimed rows
-- are deleted in the claiming transaction, so an insert marking the same
-- hour waits for the maintainer's commit and marks it again), reads the raw
-- rows of one sid through monitoring.activity_source and replaces a day's
-- rollup with monitoring.activity_store. Tenants read the rollups and the
-- dirty keys through security_barrier views in monitoring_read narrowed as
-- 00022's series views.
--
-- Indexes (organization_id, user_sid, datetime) on the activity series make
-- one employee's rows of a period one index range (reports, maintainer).

-- +goose Up
-- +goose StatementBegin
ALTER TABLE public.organizations
    ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC',
    ADD COLUMN report_policy_id bigint,
    ADD CONSTRAINT organizations_report_policy_fkey FOREIGN KEY (id, report_policy_id)
        REFERENCES public.policies (organization_id, id) ON DELETE SET NULL (report_policy_id);

CREATE FUNCTION app.organizations_check_time_zone() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF NEW.time_zone IS DISTINCT FROM 'UTC'
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = NEW.time_zone) THEN
        RAISE EXCEPTION 'time_zone: unknown IANA time zone %', NEW.time_zone
            USING ERRCODE = 'check_violation', COLUMN = 'time_zone', TABLE = 'organizations',
                  CONSTRAINT = 'organizations_time_zone_check';
    END IF;
    RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION app.organizations_check_time_zone() FROM PUBLIC;

CREATE TRIGGER organizations_check_time_zone
BEFORE INSERT OR UPDATE OF time_zone ON public.organizations
FOR EACH ROW EXECUTE FUNCTION app.organizations_check_time_zone();

CREATE TABLE monitoring.activity_dirty (
    organization_id bigint NOT NULL,
    user_sid text NOT NULL,
    hour timestamptz NOT NULL,
    PRIMARY KEY (organization_id, user_sid, hour)
);

CREATE TABLE monitoring.activity_days (
    organization_id bigint NOT NULL,
    user_sid text NOT NULL,
    day date NOT NULL,
    time_zone text NOT NULL,
    active_minutes bytea NOT NULL,
    first_at timestamptz,
    last_at timestamptz,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_sid, day),
    CHECK (length(active_minutes) BETWEEN 1 AND 200)
);

CREATE TABLE monitoring.activity_day_usage (
    organization_id bigint NOT NULL,
    user_sid text NOT NULL,
    day date NOT NULL,
    kind text NOT NULL CHECK (kind IN ('window', 'site')),
    process_name text NOT NULL DEFAULT '',
    host text NOT NULL DEFAULT '',
    seconds bigint NOT NULL CHECK (seconds >= 0),
    events bigint NOT NULL CHECK (events >= 0),
    PRIMARY KEY (organization_id, user_sid, day, kind, process_name, host)
);

REVOKE ALL ON monitoring.activity_dirty, monitoring.activity_days, monitoring.activity_day_usage FROM PUBLIC;

CREATE INDEX active_windows_organization_id_user_sid_datetime_idx ON monitoring.active_windows (organization_id, user_sid, datetime);
CREATE INDEX visited_sites_organization_id_user_sid_datetime_idx ON monitoring.visited_sites (organization_id, user_sid, datetime);
CREATE INDEX user_sessions_organization_id_user_sid_datetime_idx ON monitoring.user_sessions (organization_id, user_sid, datetime);
CREATE INDEX active_windows_organization_id_user_sid_datetime_idx ON monitoring_fallback.active_windows (organization_id, user_sid, datetime);
CREATE INDEX visited_sites_organization_id_user_sid_datetime_idx ON monitoring_fallback.visited_sites (organization_id, user_sid, datetime);
CREATE INDEX user_sessions_organization_id_user_sid_datetime_idx ON monitoring_fallback.user_sessions (organization_id, user_sid, datetime);

-- The insert functions of 00020, each marking the hours of what it
-- inserted (the rest of each function is unchanged).
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

-- The re-sync's copy (00020), marking what it copied into the store of
-- active_windows and visited_sites (with a separate store, the store's own
-- rollups learn of the rows there).
CREATE OR REPLACE FUNCTION monitoring.resync_insert(p_table text, p_rows jsonb) RETURNS integer
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
    IF org IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FILTER (WHERE r.organization_id IS DISTINCT FROM $2)
            FROM jsonb_populate_recordset(NULL::monitoring.%I, $1) r', p_table)
            INTO foreign_rows USING p_rows, org;
    END IF;
    IF org IS NULL OR foreign_rows > 0 THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "%"', p_table
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_table IN ('active_windows', 'visited_sites') THEN
        EXECUTE format('WITH ins AS (
                INSERT INTO monitoring.%1$I SELECT * FROM jsonb_populate_recordset(NULL::monitoring.%1$I, $1)
                ON CONFLICT DO NOTHING
                RETURNING organization_id, user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT i.organization_id, i.user_sid, h
                FROM ins i, generate_series(date_trunc(''hour'', i.datetime, ''UTC''),
                    date_trunc(''hour'', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), ''UTC''),
                    interval ''1 hour'') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) FROM ins', p_table) INTO inserted USING p_rows;
    ELSE
        EXECUTE format('INSERT INTO monitoring.%1$I SELECT * FROM jsonb_populate_recordset(NULL::monitoring.%1$I, $1)
            ON CONFLICT DO NOTHING', p_table) USING p_rows;
        GET DIAGNOSTICS inserted = ROW_COUNT;
    END IF;
    RETURN inserted;
END $$;

-- Claims the dirty hours before p_before of at most p_sids (organisation,
-- sid) pairs that no other transaction is maintaining: each pair's
-- advisory lock is held to the end of the caller's transaction, and its
-- dirty rows are deleted (returned) in it. Pairs in key order. (The
-- maintainer leaves the current hour, still being written, to a later run.)
CREATE FUNCTION monitoring.activity_claim(p_sids integer, p_before timestamptz)
RETURNS TABLE (organization_id bigint, user_sid text, hour timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    r record;
    taken integer := 0;
BEGIN
    IF p_sids IS NULL OR p_sids < 1 OR p_sids > 10000 THEN
        RAISE EXCEPTION 'activity_claim: % sids at once, between 1 and 10000', p_sids USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR r IN SELECT DISTINCT d.organization_id AS org, d.user_sid AS sid FROM monitoring.activity_dirty d
             WHERE d.hour < p_before ORDER BY 1, 2 LOOP
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended('monitoring.activity:' || r.org || ':' || r.sid, 0));
        RETURN QUERY
            DELETE FROM monitoring.activity_dirty d WHERE d.organization_id = r.org AND d.user_sid = r.sid AND d.hour < p_before
            RETURNING d.organization_id, d.user_sid, d.hour;
        taken := taken + 1;
        EXIT WHEN taken >= p_sids;
    END LOOP;
END $$;

-- The organisation's report time zone ('UTC' for an unknown organisation,
-- as in a separate time-series store, which has none: the maintainer asks
-- the main database).
CREATE FUNCTION monitoring.activity_time_zone(p_org bigint) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT coalesce((SELECT o.time_zone FROM public.organizations o WHERE o.id = p_org), 'UTC')
$$;

-- The activity rows of one user sid that may overlap [p_from, p_to): kind
-- 'window' (active_windows) or 'site' (visited_sites), from the store and
-- the fallback (a row in both once), starting at most 7 days (the
-- protocol's longest duration) before p_from. At most 31 days.
CREATE FUNCTION monitoring.activity_source(p_org bigint, p_sid text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (kind text, process_name text, url text, datetime timestamptz, duration_seconds integer)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_to < p_from OR p_to - p_from > interval '31 days' THEN
        RAISE EXCEPTION 'activity_source: bad range [%, %)', p_from, p_to USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
        SELECT 'window'::text, a.process_name, a.url, a.datetime, a.duration_seconds
        FROM monitoring.active_windows a
        WHERE a.organization_id = p_org AND a.user_sid = p_sid
          AND a.datetime >= p_from - interval '7 days' AND a.datetime < p_to
        UNION ALL
        SELECT 'window'::text, f.process_name, f.url, f.datetime, f.duration_seconds
        FROM monitoring_fallback.active_windows f
        WHERE f.organization_id = p_org AND f.user_sid = p_sid
          AND f.datetime >= p_from - interval '7 days' AND f.datetime < p_to
          AND NOT EXISTS (SELECT 1 FROM monitoring.active_windows m
                          WHERE m.organization_id = f.organization_id AND m.id = f.id AND m.datetime = f.datetime)
        UNION ALL
        SELECT 'site'::text, NULL::text, v.url, v.datetime, v.duration_seconds
        FROM monitoring.visited_sites v
        WHERE v.organization_id = p_org AND v.user_sid = p_sid
          AND v.datetime >= p_from - interval '7 days' AND v.datetime < p_to
        UNION ALL
        SELECT 'site'::text, NULL::text, f.url, f.datetime, f.duration_seconds
        FROM monitoring_fallback.visited_sites f
        WHERE f.organization_id = p_org AND f.user_sid = p_sid
          AND f.datetime >= p_from - interval '7 days' AND f.datetime < p_to
          AND NOT EXISTS (SELECT 1 FROM monitoring.visited_sites m
                          WHERE m.organization_id = f.organization_id AND m.id = f.id AND m.datetime = f.datetime);
END $$;

-- Replaces the rollup of one (organisation, sid, day): the day row and its
-- usage rows (parallel arrays). The caller must hold the pair's claim
-- (monitoring.activity_claim in the same transaction), else 55P03.
CREATE FUNCTION monitoring.activity_store(
    p_org bigint, p_sid text, p_day date, p_time_zone text, p_active_minutes bytea,
    p_first_at timestamptz, p_last_at timestamptz,
    p_kinds text[], p_process_names text[], p_hosts text[], p_seconds bigint[], p_events bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n integer := coalesce(cardinality(p_kinds), 0);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                   WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted AND l.objsubid = 1
                     AND ((l.classid::bigint << 32) | l.objid::bigint)
                         = hashtextextended('monitoring.activity:' || p_org || ':' || p_sid, 0)) THEN
        RAISE EXCEPTION 'activity_store: (%, %) is not claimed in this transaction', p_org, p_sid
            USING ERRCODE = 'lock_not_available';
    END IF;
    IF n > 100000 OR coalesce(cardinality(p_process_names), 0) <> n OR coalesce(cardinality(p_hosts), 0) <> n
       OR coalesce(cardinality(p_seconds), 0) <> n OR coalesce(cardinality(p_events), 0) <> n THEN
        RAISE EXCEPTION 'activity_store: usage arrays of unequal length or too long' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM monitoring.activity_day_usage WHERE organization_id = p_org AND user_sid = p_sid AND day = p_day;
    INSERT INTO monitoring.activity_days AS d (organization_id, user_sid, day, time_zone, active_minutes, first_at, last_at, computed_at)
    VALUES (p_org, p_sid, p_day, p_time_zone, p_active_minutes, p_first_at, p_last_at, now())
    ON CONFLICT (organization_id, user_sid, day) DO UPDATE
        SET time_zone = EXCLUDED.time_zone, active_minutes = EXCLUDED.active_minutes, first_at = EXCLUDED.first_at,
            last_at = EXCLUDED.last_at, computed_at = EXCLUDED.computed_at;
    INSERT INTO monitoring.activity_day_usage (organization_id, user_sid, day, kind, process_name, host, seconds, events)
    SELECT p_org, p_sid, p_day, t.kind, t.process_name, t.host, t.seconds, t.events
    FROM unnest(p_kinds, p_process_names, p_hosts, p_seconds, p_events) AS t(kind, process_name, host, seconds, events);
END $$;

REVOKE ALL ON FUNCTION monitoring.activity_claim(integer, timestamptz), monitoring.activity_time_zone(bigint),
    monitoring.activity_source(bigint, text, timestamptz, timestamptz),
    monitoring.activity_store(bigint, text, date, text, bytea, timestamptz, timestamptz, text[], text[], text[], bigint[], bigint[])
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.activity_claim(integer, timestamptz), monitoring.activity_time_zone(bigint),
    monitoring.activity_source(bigint, text, timestamptz, timestamptz),
    monitoring.activity_store(bigint, text, date, text, bytea, timestamptz, timestamptz, text[], text[], text[], bigint[], bigint[])
TO staff_ingest;

-- A change of an organisation's zone marks every hour of the days it has
-- rollups for (in the old zone): the maintainer recomputes them in the new
-- one, and until then the reports read those hours raw.
CREATE FUNCTION app.organizations_time_zone_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
    SELECT DISTINCT d.organization_id, d.user_sid, h
    FROM monitoring.activity_days d,
         generate_series(date_trunc('hour', d.day::timestamp AT TIME ZONE OLD.time_zone, 'UTC'),
                         (d.day + 1)::timestamp AT TIME ZONE OLD.time_zone - interval '1 microsecond', interval '1 hour') h
    WHERE d.organization_id = NEW.id
    ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION app.organizations_time_zone_changed() FROM PUBLIC;

CREATE TRIGGER organizations_time_zone_changed
AFTER UPDATE OF time_zone ON public.organizations
FOR EACH ROW WHEN (OLD.time_zone IS DISTINCT FROM NEW.time_zone)
EXECUTE FUNCTION app.organizations_time_zone_changed();

-- What a report of the caller's organisation applies, for every role (a
-- department lead or an employee cannot read policies): the organisation's
-- time zone and its report policy's content (NULL: the defaults).
CREATE FUNCTION app.report_settings() RETURNS TABLE (time_zone text, policy jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT o.time_zone, p.content
    FROM public.organizations o
    LEFT JOIN public.policies p ON p.organization_id = o.id AND p.id = o.report_policy_id
    WHERE o.id = app.org_id()
$$;
REVOKE ALL ON FUNCTION app.report_settings() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.report_settings() TO staff_dashboard, staff_admin;

-- The rows stored before this migration: every hour they touch is dirty,
-- so that the maintainer rolls them up (the reports read them raw until
-- then).
INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
SELECT DISTINCT r.organization_id, r.user_sid, h
FROM (SELECT organization_id, user_sid, datetime, duration_seconds FROM monitoring.active_windows
      UNION ALL SELECT organization_id, user_sid, datetime, duration_seconds FROM monitoring.visited_sites
      UNION ALL SELECT organization_id, user_sid, datetime, duration_seconds FROM monitoring_fallback.active_windows
      UNION ALL SELECT organization_id, user_sid, datetime, duration_seconds FROM monitoring_fallback.visited_sites) r,
     generate_series(date_trunc('hour', r.datetime, 'UTC'),
                     date_trunc('hour', r.datetime + make_interval(secs => greatest(coalesce(r.duration_seconds, 0), 0)), 'UTC'),
                     interval '1 hour') h
ON CONFLICT DO NOTHING;

-- The tenants' read paths, narrowed as 00022's series views.
CREATE VIEW monitoring_read.activity_days WITH (security_barrier) AS
    SELECT organization_id, user_sid, day, time_zone, active_minutes, first_at, last_at, computed_at
    FROM monitoring.activity_days
    WHERE (organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()))
      AND ((SELECT app.sees_whole_organization()) OR user_sid IN (SELECT unnest((SELECT app.scope_identities('windows_sid')))));

CREATE VIEW monitoring_read.activity_day_usage WITH (security_barrier) AS
    SELECT organization_id, user_sid, day, kind, process_name, host, seconds, events
    FROM monitoring.activity_day_usage
    WHERE (organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()))
      AND ((SELECT app.sees_whole_organization()) OR user_sid IN (SELECT unnest((SELECT app.scope_identities('windows_sid')))));

CREATE VIEW monitoring_read.activity_dirty WITH (security_barrier) AS
    SELECT organization_id, user_sid, hour
    FROM monitoring.activity_dirty
    WHERE (organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()))
      AND ((SELECT app.sees_whole_organization()) OR user_sid IN (SELECT unnest((SELECT app.scope_identities('windows_sid')))));

GRANT SELECT ON monitoring_read.activity_days, monitoring_read.activity_day_usage, monitoring_read.activity_dirty
    TO staff_dashboard, staff_admin;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP VIEW monitoring_read.activity_dirty;
DROP FUNCTION app.report_settings();
DROP TRIGGER organizations_time_zone_changed ON public.organizations;
DROP FUNCTION app.organizations_time_zone_changed();
DROP VIEW monitoring_read.activity_day_usage;
DROP VIEW monitoring_read.activity_days;
DROP FUNCTION monitoring.activity_store(bigint, text, date, text, bytea, timestamptz, timestamptz, text[], text[], text[], bigint[], bigint[]);
DROP FUNCTION monitoring.activity_source(bigint, text, timestamptz, timestamptz);
DROP FUNCTION monitoring.activity_time_zone(bigint);
DROP FUNCTION monitoring.activity_claim(integer, timestamptz);

-- The insert functions and the re-sync as 00020 left them.
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

CREATE OR REPLACE FUNCTION monitoring.resync_insert(p_table text, p_rows jsonb) RETURNS integer
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

DROP INDEX monitoring.active_windows_organization_id_user_sid_datetime_idx;
DROP INDEX monitoring.visited_sites_organization_id_user_sid_datetime_idx;
DROP INDEX monitoring.user_sessions_organization_id_user_sid_datetime_idx;
DROP INDEX monitoring_fallback.active_windows_organization_id_user_sid_datetime_idx;
DROP INDEX monitoring_fallback.visited_sites_organization_id_user_sid_datetime_idx;
DROP INDEX monitoring_fallback.user_sessions_organization_id_user_sid_datetime_idx;
DROP TABLE monitoring.activity_day_usage;
DROP TABLE monitoring.activity_days;
DROP TABLE monitoring.activity_dirty;
DROP TRIGGER organizations_check_time_zone ON public.organizations;
DROP FUNCTION app.organizations_check_time_zone();
ALTER TABLE public.organizations DROP CONSTRAINT organizations_report_policy_fkey,
    DROP COLUMN report_policy_id, DROP COLUMN time_zone;
-- +goose StatementEnd
