-- TimescaleDB, from running the whole test suite on it (issue 12). Both
-- no-ops with native partitions.
--
-- 1. The runtime roles lose every privilege on the compressed hypertables
--    and their chunks. TimescaleDB copies a hypertable's grants to the
--    compressed hypertable it creates when compression is enabled (00005,
--    again in 00013), and every compressed chunk copies the compressed
--    hypertable's. So the ingest role's INSERT on the five series reached
--    _timescaledb_internal._compressed_hypertable_N and each
--    compress_hyper_N_M_chunk, where no trigger checks the organisation
--    (00014's check_insert_organization fires on the hypertable and its
--    chunks only): on TimescaleDB 2.28.3 a direct INSERT into a compressed
--    chunk stored a row of any organisation. Nobody but the owner
--    (compression jobs, CALL run_job) writes compressed data; an ingest
--    INSERT through the hypertable into a compressed chunk's range goes to
--    the chunk itself and keeps working. Compressed chunks made later copy
--    the compressed hypertable's grants, now the owner's only; a later
--    GRANT on one of the series hypertables is passed on to its compressed
--    hypertable and chunks again, so revoke there as here (the privilege
--    test lists both). Down restores nothing: the grant was never meant.
--
-- 2. The hourly aggregate's refresh policy covers the whole history
--    (start_offset NULL) instead of the last 8 days. Real-time reads add
--    raw rows only after the watermark (the end of the last refresh): an
--    hour older than 8 days at the first refresh after its rows arrived
--    (rows that existed before the aggregate was first refreshed, or a
--    re-sync after a long outage) was never materialised and so missing
--    from monitoring_read.activity_hourly, where the partition path counts
--    it; and an hour whose rows retention dropped stays in the aggregate
--    only until the next refresh, which the old 8-day window never
--    reached. A refresh recomputes only the invalidated hours, so the whole
--    window costs a full pass once. Rows written below the watermark show
--    after the next refresh (schedule 30 minutes, run by the scheduler or,
--    where its jobs fail, the Agent API's maintainer).

-- +goose Up
-- +goose StatementBegin
DO $do$
DECLARE
    rel text;
BEGIN
    IF monitoring.storage_kind() <> 'timescaledb' THEN
        RETURN;
    END IF;
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

    PERFORM remove_continuous_aggregate_policy('monitoring.activity_hourly', if_exists => true);
    PERFORM add_continuous_aggregate_policy('monitoring.activity_hourly',
        start_offset => NULL, end_offset => interval '1 hour', schedule_interval => interval '30 minutes');
END $do$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $do$
BEGIN
    IF monitoring.storage_kind() <> 'timescaledb' THEN
        RETURN;
    END IF;
    PERFORM remove_continuous_aggregate_policy('monitoring.activity_hourly', if_exists => true);
    PERFORM add_continuous_aggregate_policy('monitoring.activity_hourly',
        start_offset => interval '8 days', end_offset => interval '1 hour', schedule_interval => interval '30 minutes');
END $do$;
-- +goose StatementEnd
