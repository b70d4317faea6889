-- Daily partitions and the retention of the series (days.go, partitions.go).

-- name: EnsureDayPartitions :one
-- Create the partitions of these tables on these UTC days ('YYYY-MM-DD')
-- in schema; returns how many it created.
SELECT monitoring.ensure_day_partitions(@schema_name::text, @tables::text[], CAST(sqlc.arg(days)::text[] AS date[]))::integer AS created;

-- name: Retention :many
SELECT table_name, days FROM monitoring.retention;

-- name: EnsureRecentPartitions :one
SELECT monitoring.ensure_recent_partitions(@behind::integer, @ahead::integer)::integer AS created;

-- name: DropExpiredPartitions :many
SELECT monitoring.drop_expired_partitions()::text AS dropped;
