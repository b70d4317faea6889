-- The report engine's reads (engine.go), as the dashboard or platform
-- administrator role in the caller's tenant transaction: row-level
-- security and the monitoring_read views narrow every one to the caller's
-- scope. Per employee: the rows of its identities, one day range at a time.

-- name: Departments :many
SELECT id, parent_id, name FROM departments ORDER BY id;

-- name: Employees :many
SELECT id, department_id, employee_number, first_name, last_name, status
FROM employees
WHERE (cardinality(@ids::bigint[]) = 0 OR id = ANY (@ids::bigint[]))
  AND (NOT @by_department::boolean OR department_id = ANY (@departments::bigint[]))
ORDER BY id;

-- name: Identities :many
SELECT employee_id, kind, value FROM employee_identities
WHERE employee_id = ANY (@ids::bigint[])
ORDER BY employee_id, kind, value;

-- name: AllIdentities :many
SELECT employee_id, kind, value FROM employee_identities
WHERE kind IN ('windows_sid', 'card_number', 'employee_number')
ORDER BY employee_id, kind, value;

-- name: AllEmployeeNumbers :many
SELECT id, employee_number FROM employees ORDER BY id;

-- name: Windows :many
SELECT id, user_sid, process_name, url, datetime, duration_seconds
FROM monitoring_read.active_windows
WHERE user_sid = ANY (@sids::text[]) AND datetime >= @lookback AND datetime < @to_time
  AND (datetime >= @from_time OR datetime + make_interval(secs => greatest(coalesce(duration_seconds, 0), 0)) > @from_time);

-- name: Sites :many
SELECT id, user_sid, url, datetime, duration_seconds
FROM monitoring_read.visited_sites
WHERE user_sid = ANY (@sids::text[]) AND datetime >= @lookback AND datetime < @to_time
  AND (datetime >= @from_time OR datetime + make_interval(secs => greatest(coalesce(duration_seconds, 0), 0)) > @from_time);

-- name: Sessions :many
SELECT id, computer_uid, session_type, datetime
FROM monitoring_read.user_sessions
WHERE user_sid = ANY (@sids::text[]) AND datetime >= @from_time AND datetime < @to_time;

-- name: SessionBefore :many
SELECT id, computer_uid, session_type, datetime
FROM monitoring_read.user_sessions
WHERE user_sid = ANY (@sids::text[]) AND datetime >= @since AND datetime < @before
ORDER BY datetime DESC, computer_uid DESC, session_type DESC
LIMIT 1;

-- name: RollupDays :many
SELECT user_sid, day, time_zone, active_minutes
FROM monitoring_read.activity_days
WHERE user_sid = ANY (@sids::text[]) AND day >= @from_day AND day <= @to_day;

-- name: RollupUsage :many
SELECT user_sid, day, kind, process_name, host, seconds, events
FROM monitoring_read.activity_day_usage
WHERE user_sid = ANY (@sids::text[]) AND day >= @from_day AND day <= @to_day;

-- name: DirtyHours :many
SELECT user_sid, hour
FROM monitoring_read.activity_dirty
WHERE user_sid = ANY (@sids::text[]) AND hour >= @from_time AND hour < @to_time;

-- name: DeviceEvents :many
SELECT id, device_id, device_serial, datetime, employee_number, card_number, door, direction
FROM monitoring_read.device_events
WHERE datetime >= @from_time AND datetime < @to_time
  AND (employee_number = ANY (@numbers::text[]) OR card_number = ANY (@cards::text[]));

-- name: UnknownBadges :many
SELECT id, device_id, device_serial, datetime, employee_number, card_number, door, direction
FROM monitoring_read.device_events
WHERE datetime >= @from_time AND datetime < @to_time
  AND NOT (coalesce(employee_number, '') = ANY (@numbers::text[]))
  AND NOT (coalesce(card_number, '') = ANY (@cards::text[]))
ORDER BY datetime, id
LIMIT @max_rows;

-- name: RawWindowSids :many
SELECT DISTINCT user_sid FROM monitoring_read.active_windows WHERE datetime >= @from_time AND datetime < @to_time;

-- name: RawSiteSids :many
SELECT DISTINCT user_sid FROM monitoring_read.visited_sites WHERE datetime >= @from_time AND datetime < @to_time;

-- name: RollupActivitySids :many
SELECT DISTINCT user_sid FROM monitoring_read.activity_days WHERE day >= @from_day AND day <= @to_day;

-- name: AnyDirty :one
SELECT EXISTS (SELECT 1 FROM monitoring_read.activity_dirty WHERE hour >= @from_time AND hour < @to_time);

-- name: RollupUsageTotals :many
-- A summary's application usage (kind window: the only kind its
-- productivity counts) of the days the rollups serve: summed over the
-- period per sid and key, leaving out the (sid, day) pairs read raw.
SELECT u.user_sid, u.kind, u.process_name, u.host,
       sum(u.seconds)::bigint AS seconds, sum(u.events)::bigint AS events
FROM monitoring_read.activity_day_usage u
WHERE u.user_sid = ANY (@sids::text[]) AND u.day >= @from_day AND u.day <= @to_day AND u.kind = 'window'
  AND NOT EXISTS (SELECT 1 FROM (SELECT unnest(@skip_sids::text[]) AS sid, unnest(@skip_days::date[]) AS day) x
                  WHERE x.sid = u.user_sid AND x.day = u.day)
GROUP BY u.user_sid, u.kind, u.process_name, u.host;

-- name: SummarySettings :exec
-- For this transaction only: a summary's aggregate hashes one key per
-- (sid, application, host) of the period, so enough memory to do it
-- without spilling to disk (the default 4 MB sorts a 1,000-employee month
-- on disk); and custom plans always: after five runs of a prepared
-- statement PostgreSQL may switch to a generic plan, which for these
-- array parameters was ten times slower (4 s instead of 0.4 s).
SELECT set_config('work_mem', '64MB', true), set_config('plan_cache_mode', 'force_custom_plan', true);
