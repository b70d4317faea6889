-- TimescaleDB for real (issue 12): what running the migrations against a real
-- TimescaleDB 2.28.3 on PostgreSQL 15.20 showed, fixed on both engines.
--
-- * monitoring.storage_kind() reads what the time series are (a partitioned
--   table or not), not whether the extension exists: a database created
--   with native partitions keeps working when an administrator later
--   creates the extension in it.
-- * The organisation check of hypertable inserts (00014's trigger, where
--   TimescaleDB refuses row-level security with compression) exempts whom
--   row-level security exempts: superusers, BYPASSRLS roles and the owner.
-- * Screenshot inserts no longer end in RETURNING id, which needed SELECT
--   (id) on the series: a column grant fails on a hypertable with
--   compression (it is passed on to the compressed hypertable, which has no
--   such column), and on a hypertable, which has no row-level security, it
--   showed the ingest role every organisation's ids. Ingest asks
--   monitoring.stored_screenshots instead, only when an insert skipped
--   rows: the verified organisation's stored rows and their files.
-- * The hourly activity aggregate reads in real time (materialized_only =
--   false: the materialised buckets plus the raw rows after the watermark,
--   so the newest hour is always included and nothing waits for the refresh
--   job), and both engines answer alike: UTC hours, fallback rows included.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION monitoring.storage_kind() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT CASE WHEN (SELECT relkind FROM pg_class WHERE oid = 'monitoring.active_windows'::regclass) = 'p'
                THEN 'partitions' ELSE 'timescaledb' END
$$;

CREATE OR REPLACE FUNCTION monitoring.check_insert_organization() RETURNS trigger
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

-- The stored screenshots among p_ids/p_times in the verified organisation,
-- with the file each references: a row whose file is not the uploader's is
-- a duplicate's, stored before.
CREATE FUNCTION monitoring.stored_screenshots(p_schema text, p_ids uuid[], p_times timestamptz[])
RETURNS TABLE (id uuid, seq bigint, file_path text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    org bigint := app.org_id();
BEGIN
    IF p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'stored_screenshots: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF org IS NULL OR cardinality(p_ids) > 10000 THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT s.id, s.seq, s.file_path FROM %I.screenshots s JOIN unnest($1, $2) AS k(id, datetime)
           ON s.id = k.id AND s.datetime = k.datetime WHERE s.organization_id = $3', p_schema)
        USING p_ids, p_times, org;
END $$;
REVOKE ALL ON FUNCTION monitoring.stored_screenshots(text, uuid[], timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.stored_screenshots(text, uuid[], timestamptz[]) TO staff_ingest;

REVOKE SELECT (id) ON monitoring_fallback.screenshots FROM staff_ingest;
DO $$
DECLARE
    s text;
    t text;
BEGIN
    IF monitoring.storage_kind() = 'partitions' THEN
        REVOKE SELECT (id) ON monitoring.screenshots FROM staff_ingest;
    END IF;
    FOREACH s IN ARRAY ARRAY['monitoring', 'monitoring_fallback'] LOOP
        FOR t IN SELECT table_name FROM monitoring.retention ORDER BY table_name LOOP
            EXECUTE format('DROP POLICY IF EXISTS tenant_returning ON %I.%I', s, t);
        END LOOP;
    END LOOP;
END $$;

DO $do$
BEGIN
    IF monitoring.storage_kind() = 'timescaledb' THEN
        ALTER MATERIALIZED VIEW monitoring.activity_hourly SET (timescaledb.materialized_only = false);
        -- The aggregate's buckets (UTC, time_bucket's default), plus the
        -- fallback's rows the store does not hold, summed per bucket.
        DROP VIEW monitoring_read.activity_hourly;
        CREATE VIEW monitoring_read.activity_hourly WITH (security_barrier) AS
            SELECT bucket, organization_id, user_sid, computer_uid,
                   sum(window_events)::bigint AS window_events, sum(active_seconds)::bigint AS active_seconds
            FROM (
                SELECT a.bucket, a.organization_id, a.user_sid, a.computer_uid, a.window_events, a.active_seconds
                FROM monitoring.activity_hourly a
                WHERE a.organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations())
                UNION ALL
                SELECT date_trunc('hour', f.datetime, 'UTC'), f.organization_id, f.user_sid, f.computer_uid,
                       count(*), coalesce(sum(f.duration_seconds), 0)
                FROM monitoring_fallback.active_windows f
                WHERE (f.organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()))
                  AND NOT EXISTS (SELECT 1 FROM monitoring.active_windows m
                                  WHERE m.organization_id = f.organization_id AND m.id = f.id AND m.datetime = f.datetime)
                GROUP BY 1, 2, 3, 4
            ) x
            GROUP BY 1, 2, 3, 4;
    ELSE
        DROP VIEW monitoring_read.activity_hourly;
        CREATE VIEW monitoring_read.activity_hourly WITH (security_barrier) AS
            SELECT date_trunc('hour', datetime, 'UTC') AS bucket, organization_id, user_sid, computer_uid,
                   count(*) AS window_events, coalesce(sum(duration_seconds), 0)::bigint AS active_seconds
            FROM monitoring_read.active_windows
            WHERE organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations())
            GROUP BY 1, 2, 3, 4;
    END IF;
END $do$;
GRANT SELECT ON monitoring_read.activity_hourly TO staff_dashboard, staff_admin;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $do$
BEGIN
    DROP VIEW monitoring_read.activity_hourly;
    IF monitoring.storage_kind() = 'timescaledb' THEN
        ALTER MATERIALIZED VIEW monitoring.activity_hourly SET (timescaledb.materialized_only = true);
        CREATE VIEW monitoring_read.activity_hourly WITH (security_barrier) AS
            SELECT bucket, organization_id, user_sid, computer_uid, window_events, active_seconds
            FROM monitoring.activity_hourly
            WHERE organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations());
    ELSE
        CREATE VIEW monitoring_read.activity_hourly WITH (security_barrier) AS
            SELECT date_trunc('hour', datetime) AS bucket, organization_id, user_sid, computer_uid,
                   count(*) AS window_events, coalesce(sum(duration_seconds), 0) AS active_seconds
            FROM monitoring_read.active_windows
            WHERE organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations())
            GROUP BY 1, 2, 3, 4;
    END IF;
END $do$;
GRANT SELECT ON monitoring_read.activity_hourly TO staff_dashboard, staff_admin;

DO $$
DECLARE
    s text;
    t text;
BEGIN
    FOREACH s IN ARRAY ARRAY['monitoring', 'monitoring_fallback'] LOOP
        FOR t IN SELECT table_name FROM monitoring.retention ORDER BY table_name LOOP
            IF s = 'monitoring_fallback' OR monitoring.storage_kind() = 'partitions' THEN
                EXECUTE format($p$CREATE POLICY tenant_returning ON %I.%I FOR SELECT
                    USING (organization_id = (SELECT app.org_id()))$p$, s, t);
            END IF;
        END LOOP;
    END LOOP;
    GRANT SELECT (id) ON monitoring_fallback.screenshots TO staff_ingest;
    IF monitoring.storage_kind() = 'partitions' THEN
        GRANT SELECT (id) ON monitoring.screenshots TO staff_ingest;
    END IF;
END $$;
DROP FUNCTION monitoring.stored_screenshots(text, uuid[], timestamptz[]);

CREATE OR REPLACE FUNCTION monitoring.check_insert_organization() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF current_user <> 'staff_owner' AND NEW.organization_id IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "%"', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION monitoring.storage_kind() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
                THEN 'timescaledb' ELSE 'partitions' END
$$;
-- +goose StatementEnd
