-- The maintainer's runs of the TimescaleDB policies in place of a job the
-- scheduler is not running (jobs.go). Each returns the chunks it dropped or
-- compressed.

-- name: ApplyRetention :many
SELECT monitoring.apply_retention(@table_name::text)::text AS chunk;

-- name: ApplyCompression :many
SELECT monitoring.apply_compression(@table_name::text)::text AS chunk;
