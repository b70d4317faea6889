-- Retention reaches the reports' rollups (issue 15).
--
-- Before: retention deleted an organisation's active windows and visited
-- sites past its horizon (row by row, 00027) or dropped whole partitions
-- past the global one, but monitoring.activity_days and
-- activity_day_usage (00026) kept the days they summarise: the reports
-- went on showing activity whose rows retention had deleted, and the
-- rollups grew forever.
--
-- Now monitoring.retention_rollups(p_limit), called by the retention run
-- (holding the retention lock, like every retention function) until it
-- returns 0, deletes at most p_limit rows of each rollup table per call:
--   * activity_days and activity_day_usage kind 'window' of the local days
--     (in the organisation's time zone) wholly before the organisation's
--     effective horizon of active_windows; kind 'site' likewise against
--     visited_sites;
--   * and marks the day the horizon falls in dirty (the horizon's hour),
--     so that the maintainer recomputes it from the rows that remain (the
--     horizon moves on every run, so that day is marked on every run:
--     one day per SID and run, bounded).
-- The horizons are monitoring.retention_effective's (the organisation's
-- policy, else the platform default, else the global days), for every
-- organisation, not only those deleted row by row: a partition dropped at
-- the global horizon takes its days' rollups too. No time or range is the
-- caller's.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION monitoring.retention_rollups(p_limit integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n bigint := 0;
    m bigint;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'retention_rollups: p_limit must be between 1 and 10000, not %', p_limit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
                   AND l.classid = 1380270926 AND l.objid = 27 AND l.objsubid = 2 AND l.granted) THEN
        RAISE EXCEPTION 'retention_rollups: this session does not hold the retention lock'
            USING ERRCODE = 'lock_not_available';
    END IF;

    -- The first local day each organisation keeps, per series.
    CREATE TEMP TABLE IF NOT EXISTS retention_rollup_keep (
        organization_id bigint, table_name text, horizon timestamptz, keep_from date) ON COMMIT DROP;
    TRUNCATE retention_rollup_keep;
    INSERT INTO retention_rollup_keep
    SELECT e.organization_id, e.table_name, now() - make_interval(days => e.days),
           ((now() - make_interval(days => e.days)) AT TIME ZONE o.time_zone)::date
    FROM monitoring.retention_effective e
    JOIN public.organizations o ON o.id = e.organization_id
    WHERE e.table_name IN ('active_windows', 'visited_sites');

    WITH v AS (
        SELECT u.ctid FROM monitoring.activity_day_usage u
        JOIN retention_rollup_keep k ON k.organization_id = u.organization_id
         AND k.table_name = CASE u.kind WHEN 'site' THEN 'visited_sites' ELSE 'active_windows' END
        WHERE u.day < k.keep_from
        LIMIT p_limit
    ), d AS (
        DELETE FROM monitoring.activity_day_usage u USING v WHERE u.ctid = v.ctid RETURNING 1
    )
    SELECT count(*) INTO m FROM d;
    n := n + m;

    WITH v AS (
        SELECT a.organization_id, a.user_sid, a.day FROM monitoring.activity_days a
        JOIN retention_rollup_keep k ON k.organization_id = a.organization_id AND k.table_name = 'active_windows'
        WHERE a.day < k.keep_from
        LIMIT p_limit
    ), d AS (
        DELETE FROM monitoring.activity_days a USING v
        WHERE a.organization_id = v.organization_id AND a.user_sid = v.user_sid AND a.day = v.day
        RETURNING 1
    )
    SELECT count(*) INTO m FROM d;
    n := n + m;

    -- The day the horizon falls in: recomputed from what remains.
    INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
    SELECT DISTINCT a.organization_id, a.user_sid, date_trunc('hour', k.horizon)
    FROM monitoring.activity_days a
    JOIN retention_rollup_keep k ON k.organization_id = a.organization_id AND k.table_name = 'active_windows'
    WHERE a.day = k.keep_from
    ON CONFLICT DO NOTHING;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION monitoring.retention_rollups(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.retention_rollups(integer) TO staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION monitoring.retention_rollups(integer);
-- +goose StatementEnd
