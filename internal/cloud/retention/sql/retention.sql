-- Retention's calls of the definer functions of migration 00027 (run.go).
-- Every call of a run goes through the one connection that holds the
-- retention advisory lock.

-- name: RunBegin :one
-- Takes the lock and records the run (skipped without the lock).
SELECT r.run_id::bigint AS run_id, r.acquired::boolean AS acquired, r.interrupted::integer AS interrupted
  FROM monitoring.retention_run_begin(@dry_run::boolean) AS r(run_id, acquired, interrupted);

-- name: RunProgress :exec
SELECT monitoring.retention_run_progress(@run_id::bigint, @table_name::text, @rows::bigint, @files::bigint,
    @bytes::bigint, @archived::integer);

-- name: RunFinish :one
SELECT monitoring.retention_run_finish(@run_id::bigint, @error::text)::text AS status;

-- name: Horizons :many
SELECT h.organization_id::bigint AS organization_id, h.table_name::text AS table_name, h.days::integer AS days,
       h.action::text AS action, h.horizon::timestamptz AS horizon
  FROM monitoring.retention_horizons() AS h(organization_id, table_name, days, action, horizon);

-- name: DeleteBatch :many
-- At most max_rows of the organisation's rows of the series past its
-- horizon, deleted; the caller's transaction decides whether they stay
-- deleted.
SELECT d.schema_name::text AS schema_name, d.id::uuid AS id, d.datetime::timestamptz AS datetime,
       coalesce(d.file_path, '')::text AS file_path, coalesce(d.file_size, 0)::bigint AS file_size, d.row_json::text AS row_json
  FROM monitoring.retention_delete(@table_name::text, @organization_id::bigint, @max_rows::integer)
       AS d(schema_name, id, datetime, file_path, file_size, row_json);

-- name: Preview :many
SELECT p.organization_id::bigint AS organization_id, p.table_name::text AS table_name, p.rows::bigint AS rows,
       p.files::bigint AS files, p.bytes::bigint AS bytes
  FROM monitoring.retention_preview() AS p(organization_id, table_name, rows, files, bytes);

-- name: ExpiredPartitions :many
SELECT e.partition_name::text AS partition_name, e.table_name::text AS table_name, e.rows::bigint AS rows,
       e.rows_unlisted::bigint AS rows_unlisted
  FROM monitoring.retention_expired_partitions() AS e(partition_name, table_name, rows, rows_unlisted);

-- name: DropExpiredPartitions :many
SELECT monitoring.drop_expired_partitions()::text AS dropped;

-- name: ApplyRetention :many
SELECT monitoring.apply_retention(@table_name::text)::text AS chunk;

-- name: StorageKind :one
SELECT monitoring.storage_kind()::text AS kind;

-- name: GlobalRetention :many
SELECT table_name, days FROM monitoring.retention ORDER BY table_name;

-- name: Run :one
SELECT id, started_at, finished_at, dry_run, status, rows, files, bytes, archived, error
  FROM monitoring.retention_runs WHERE id = @id;

-- name: RecentRuns :many
SELECT id, started_at, finished_at, dry_run, status, rows, files, bytes, archived, error
  FROM monitoring.retention_runs ORDER BY id DESC LIMIT @max_runs;

-- name: LastSuccess :many
SELECT finished_at FROM monitoring.retention_runs
 WHERE status = 'succeeded' AND NOT dry_run ORDER BY finished_at DESC LIMIT 1;

-- name: DeactivatePolicies :execrows
-- In the caller's tenant transaction: the active policies of the series
-- for the organisation (NULL: the platform default) stop applying.
UPDATE retention_policies SET is_active = false
 WHERE organization_id IS NOT DISTINCT FROM sqlc.narg(organization_id)::bigint
   AND resource_type = @resource_type AND is_active;

-- name: InsertPolicy :one
INSERT INTO retention_policies (organization_id, resource_type, retention_days, action)
VALUES (sqlc.narg(organization_id)::bigint, @resource_type, @retention_days, @action)
RETURNING id;

-- name: DeleteRollups :one
-- The report rollups of days past the horizons, at most max_rows per table
-- per call (00028).
SELECT monitoring.retention_rollups(@max_rows::integer)::bigint AS rows;
