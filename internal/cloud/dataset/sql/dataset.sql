-- The generator's statements (dataset.go). They run on the administrator's
-- connection (the schema owner or a superuser), never a runtime role.

-- name: EnsurePartitions :one
-- Create the native daily partitions of every series for the UTC days
-- [from_day, to_day] (00002's owner-only function: no retention bound, at
-- most 400 days); a no-op under TimescaleDB.
SELECT monitoring.ensure_partitions(@from_day::date, @to_day::date)::integer AS created;

-- name: StorageKind :one
-- 'timescaledb' (hypertables) or 'partitions' (native daily partitions).
SELECT monitoring.storage_kind()::text AS kind;

-- name: SetReportSettings :execrows
-- The organisation's time zone and report policy (migration 00026), in
-- the platform administrator's tenant transaction.
UPDATE organizations SET time_zone = @time_zone, report_policy_id = @report_policy_id WHERE id = @id;
