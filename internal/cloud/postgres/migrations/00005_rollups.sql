-- Hourly activity rollups for reports, and TimescaleDB compression.
--
-- monitoring_read.activity_hourly is the one read path for hourly activity
-- (per organisation, hour, user and computer: window events and active
-- seconds). Under TimescaleDB it reads a continuous aggregate, and the
-- hypertables are compressed (segment by organisation, order by datetime)
-- after 7 days; neither tolerates row-level security, which is why tenants
-- reach them only through this filtering security_barrier view
-- (DESIGN.md §3). With native partitions the view aggregates the raw rows.

-- +goose Up
-- +goose StatementBegin
DO $do$
DECLARE
    t text;
BEGIN
    IF monitoring.storage_kind() = 'timescaledb' THEN
        FOREACH t IN ARRAY ARRAY['active_windows', 'visited_sites', 'screenshots', 'user_sessions', 'device_events'] LOOP
            EXECUTE format($c$ALTER TABLE monitoring.%I SET (timescaledb.compress,
                timescaledb.compress_segmentby = 'organization_id', timescaledb.compress_orderby = 'datetime DESC, id')$c$, t);
            PERFORM add_compression_policy(format('monitoring.%I', t)::regclass, interval '7 days');
        END LOOP;
        EXECUTE $v$CREATE MATERIALIZED VIEW monitoring.activity_hourly WITH (timescaledb.continuous) AS
            SELECT time_bucket(interval '1 hour', datetime) AS bucket, organization_id, user_sid, computer_uid,
                   count(*) AS window_events, coalesce(sum(duration_seconds), 0) AS active_seconds
            FROM monitoring.active_windows
            GROUP BY 1, 2, 3, 4
            WITH NO DATA$v$;
        PERFORM add_continuous_aggregate_policy('monitoring.activity_hourly',
            start_offset => interval '8 days', end_offset => interval '1 hour', schedule_interval => interval '30 minutes');
        EXECUTE $v$CREATE VIEW monitoring_read.activity_hourly WITH (security_barrier) AS
            SELECT bucket, organization_id, user_sid, computer_uid, window_events, active_seconds
            FROM monitoring.activity_hourly
            WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
               OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'$v$;
    ELSE
        EXECUTE $v$CREATE VIEW monitoring_read.activity_hourly WITH (security_barrier) AS
            SELECT date_trunc('hour', datetime) AS bucket, organization_id, user_sid, computer_uid,
                   count(*) AS window_events, coalesce(sum(duration_seconds), 0) AS active_seconds
            FROM monitoring_read.active_windows
            WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
               OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
            GROUP BY 1, 2, 3, 4$v$;
    END IF;
END $do$;
GRANT SELECT ON monitoring_read.activity_hourly TO staff_dashboard;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP VIEW monitoring_read.activity_hourly;
DO $do$
DECLARE
    t text;
BEGIN
    IF monitoring.storage_kind() = 'timescaledb' THEN
        DROP MATERIALIZED VIEW monitoring.activity_hourly;
        FOREACH t IN ARRAY ARRAY['active_windows', 'visited_sites', 'screenshots', 'user_sessions', 'device_events'] LOOP
            PERFORM remove_compression_policy(format('monitoring.%I', t)::regclass);
        END LOOP;
    END IF;
END $do$;
-- +goose StatementEnd
