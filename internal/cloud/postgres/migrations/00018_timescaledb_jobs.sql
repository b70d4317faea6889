-- TimescaleDB's jobs watched, and retention that never silently stops
-- (issue 12, deliverable 3).
--
-- On Debian's PostgreSQL 15.19/15.20 every TimescaleDB 2.28.3 background job
-- fails (`cannot drop portal "" while it is being set up`) while `CALL
-- run_job(id)` works, and nothing noticed: retention stopped and the disk
-- would have filled. A scheduler can also be absent (no background worker
-- left), a job paused, or a policy removed. So:
--
-- * monitoring.job_health() reports every TimescaleDB job of schema
--   monitoring (retention, compression, continuous-aggregate refresh): last
--   run, status, last success, failures, next start, whether it is failing
--   (last run failed) or overdue (paused; not running and its next start
--   more than an hour ago; its last success older than its schedule interval
--   plus an hour), a missing
--   retention policy as an overdue row without a job, and when the
--   maintainer last did the policy's work. Metadata only, no caller-chosen
--   argument, nothing on native partitions. The Agent API exports it as
--   metrics.
-- * monitoring.apply_retention(table) and monitoring.apply_compression(table)
--   do what the retention and compression policies do, directly (`CALL
--   run_job` cannot run inside a function: the policies are procedures that
--   commit): drop the table's chunks wholly older than its retention in
--   monitoring.retention, at most 100 per call, oldest first; compress its
--   chunks wholly older than the policy's compress_after (7 days) that are
--   not compressed, at most 10 per call, oldest first, never one retention
--   is about to drop. Both measure from the server's clock (now()); the
--   caller chooses only which of the five tables, which can do no more than
--   the policy itself would. They record each run in
--   monitoring.maintainer_policy_runs, which no runtime role can write.
--   The Agent API's maintainer calls them hourly for the jobs job_health()
--   reports failing or overdue.
-- * The continuous aggregate's refresh is reported but not replaced: its
--   reads are real-time (00017), so a stale refresh costs speed only, and
--   refresh_continuous_aggregate is a procedure of the owner.

-- +goose Up
-- +goose StatementBegin
CREATE TABLE monitoring.maintainer_policy_runs (
    kind        text NOT NULL CHECK (kind IN ('retention', 'compression')),
    table_name  text NOT NULL REFERENCES monitoring.retention (table_name) ON DELETE CASCADE,
    last_run_at timestamptz NOT NULL,
    runs        bigint NOT NULL,
    chunks      bigint NOT NULL,
    PRIMARY KEY (kind, table_name)
);
REVOKE ALL ON monitoring.maintainer_policy_runs FROM PUBLIC;

CREATE FUNCTION monitoring.job_health()
RETURNS TABLE (job_id integer, kind text, table_name text, schedule_interval interval, scheduled boolean,
               last_run_started_at timestamptz, last_successful_finish timestamptz, last_run_status text,
               total_runs bigint, total_failures bigint, consecutive_failures integer, next_start timestamptz,
               failing boolean, overdue boolean, maintainer_last_run timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    margin CONSTANT interval := interval '1 hour';
BEGIN
    IF monitoring.storage_kind() <> 'timescaledb' THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH j AS (
        SELECT jb.job_id,
               CASE jb.proc_name WHEN 'policy_retention' THEN 'retention'
                                 WHEN 'policy_compression' THEN 'compression'
                                 WHEN 'policy_refresh_continuous_aggregate' THEN 'refresh'
                                 ELSE jb.proc_name::text END AS kind,
               jb.hypertable_name::text AS table_name, jb.schedule_interval, jb.scheduled,
               NULLIF(NULLIF(bs.last_start, '-infinity'), 'infinity') AS last_start,
               NULLIF(NULLIF(bs.last_successful_finish, '-infinity'), 'infinity') AS last_success,
               st.last_run_status, bs.total_runs, bs.total_failures, bs.consecutive_failures,
               NULLIF(NULLIF(bs.next_start, '-infinity'), 'infinity') AS next_start,
               st.job_status
        FROM timescaledb_information.jobs jb
        LEFT JOIN timescaledb_information.job_stats st ON st.job_id = jb.job_id
        LEFT JOIN _timescaledb_internal.bgw_job_stat bs ON bs.job_id = jb.job_id
        WHERE jb.hypertable_schema = 'monitoring'
    )
    SELECT j.job_id, j.kind, j.table_name, j.schedule_interval, j.scheduled, j.last_start, j.last_success,
           j.last_run_status, coalesce(j.total_runs, 0), coalesce(j.total_failures, 0),
           coalesce(j.consecutive_failures, 0), j.next_start,
           coalesce(j.last_run_status = 'Failed', false),
           -- coalesce: a job the scheduler has not planned yet has no next
           -- start (NULL), which is not overdue.
           coalesce(NOT j.scheduled
             OR (j.job_status IS DISTINCT FROM 'Running' AND j.next_start < now() - margin)
             OR (j.last_success IS NOT NULL AND j.last_success < now() - (j.schedule_interval + margin)), false),
           m.last_run_at
    FROM j
    LEFT JOIN monitoring.maintainer_policy_runs m ON m.kind = j.kind AND m.table_name = j.table_name
    UNION ALL
    -- A table without a retention policy: retention stopped, overdue.
    SELECT NULL::integer, 'retention', r.table_name, NULL::interval, false, NULL::timestamptz, NULL::timestamptz,
           NULL::text, 0::bigint, 0::bigint, 0, NULL::timestamptz, false, true, m.last_run_at
    FROM monitoring.retention r
    LEFT JOIN monitoring.maintainer_policy_runs m ON m.kind = 'retention' AND m.table_name = r.table_name
    WHERE NOT EXISTS (SELECT 1 FROM j WHERE j.kind = 'retention' AND j.table_name = r.table_name)
    ORDER BY 2, 3, 1;
END $$;

-- Drop p_table's chunks wholly older than its retention (monitoring.retention,
-- from now()), oldest first, at most 100 per call; returns their names.
CREATE FUNCTION monitoring.apply_retention(p_table text) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    max_dropped CONSTANT integer := 100;
    keep_days integer;
    ext text;
    cutoff timestamptz;
    upto timestamptz;
    n bigint := 0;
    c text;
BEGIN
    SELECT r.days INTO keep_days FROM monitoring.retention r WHERE r.table_name = p_table;
    IF keep_days IS NULL THEN
        RAISE EXCEPTION 'apply_retention: % is not a time-series table', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF monitoring.storage_kind() <> 'timescaledb' THEN
        RETURN;
    END IF;
    -- Concurrent maintainers (replicas) take turns per table.
    PERFORM pg_advisory_xact_lock(hashtext('monitoring.apply_retention.' || p_table));
    SELECT e.extnamespace::regnamespace::text INTO ext FROM pg_extension e WHERE e.extname = 'timescaledb';
    cutoff := now() - make_interval(days => keep_days);
    -- The bound: no further than the end of the 100th oldest expired chunk.
    SELECT max(x.range_end) INTO upto FROM (
        SELECT ch.range_end FROM timescaledb_information.chunks ch
        WHERE ch.hypertable_schema = 'monitoring' AND ch.hypertable_name = p_table AND ch.range_end <= cutoff
        ORDER BY ch.range_end LIMIT max_dropped) x;
    IF upto IS NOT NULL THEN
        FOR c IN EXECUTE format('SELECT %I.drop_chunks(%L::regclass, older_than => $1)', ext, 'monitoring.' || quote_ident(p_table))
                 USING least(upto, cutoff) LOOP
            n := n + 1;
            RETURN NEXT c;
        END LOOP;
    END IF;
    INSERT INTO monitoring.maintainer_policy_runs AS m VALUES ('retention', p_table, now(), 1, n)
        ON CONFLICT (kind, table_name) DO UPDATE SET last_run_at = now(), runs = m.runs + 1, chunks = m.chunks + n;
END $$;

-- Compress p_table's uncompressed chunks wholly older than its compression
-- policy's compress_after (7 days; none without a policy) and not yet past
-- retention, oldest first, at most 10 per call; returns their names.
CREATE FUNCTION monitoring.apply_compression(p_table text) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    max_compressed CONSTANT integer := 10;
    keep_days integer;
    ext text;
    after interval;
    n bigint := 0;
    r record;
BEGIN
    SELECT rt.days INTO keep_days FROM monitoring.retention rt WHERE rt.table_name = p_table;
    IF keep_days IS NULL THEN
        RAISE EXCEPTION 'apply_compression: % is not a time-series table', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF monitoring.storage_kind() <> 'timescaledb' THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('monitoring.apply_compression.' || p_table));
    SELECT e.extnamespace::regnamespace::text INTO ext FROM pg_extension e WHERE e.extname = 'timescaledb';
    SELECT (jb.config ->> 'compress_after')::interval INTO after FROM timescaledb_information.jobs jb
    WHERE jb.proc_name = 'policy_compression' AND jb.hypertable_schema = 'monitoring' AND jb.hypertable_name = p_table
    ORDER BY jb.job_id LIMIT 1;
    IF after IS NULL THEN
        RETURN; -- no compression policy (migration 00013 removes it while it rebuilds the key)
    END IF;
    after := greatest(after, interval '1 day');
    FOR r IN
        SELECT format('%I.%I', ch.chunk_schema, ch.chunk_name) AS chunk
        FROM timescaledb_information.chunks ch
        WHERE ch.hypertable_schema = 'monitoring' AND ch.hypertable_name = p_table AND NOT ch.is_compressed
          AND ch.range_end <= now() - after AND ch.range_end > now() - make_interval(days => keep_days)
        ORDER BY ch.range_end
        LIMIT max_compressed
    LOOP
        EXECUTE format('SELECT %I.compress_chunk(%L::regclass, if_not_compressed => true)', ext, r.chunk);
        n := n + 1;
        RETURN NEXT r.chunk;
    END LOOP;
    INSERT INTO monitoring.maintainer_policy_runs AS m VALUES ('compression', p_table, now(), 1, n)
        ON CONFLICT (kind, table_name) DO UPDATE SET last_run_at = now(), runs = m.runs + 1, chunks = m.chunks + n;
END $$;

REVOKE ALL ON FUNCTION monitoring.job_health(), monitoring.apply_retention(text), monitoring.apply_compression(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.job_health(), monitoring.apply_retention(text), monitoring.apply_compression(text)
    TO staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION monitoring.apply_compression(text);
DROP FUNCTION monitoring.apply_retention(text);
DROP FUNCTION monitoring.job_health();
DROP TABLE monitoring.maintainer_policy_runs;
-- +goose StatementEnd
