-- Hand-written (loaded by sqlfile, not compiled by sqlc): the health of the
-- TimescaleDB jobs comes from monitoring.job_health(), whose RETURNS TABLE
-- columns sqlc cannot see (it types a function's result columns only
-- through casts, and then takes every one for NOT NULL, while the times
-- here are NULL for a job that never ran), so the rows are scanned by hand
-- into JobHealth (jobs.go).

-- name: JobHealth :many
SELECT coalesce(job_id, 0), kind, table_name,
       coalesce(extract(epoch FROM schedule_interval), 0)::float8, scheduled, last_run_started_at,
       last_successful_finish, coalesce(last_run_status, ''), total_runs, total_failures, consecutive_failures,
       next_start, failing, overdue, maintainer_last_run
  FROM monitoring.job_health();
