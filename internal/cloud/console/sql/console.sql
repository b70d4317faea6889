-- The web console's own reads (console.go): the overview's widgets, one
-- statement each. Row-level security limits every statement to the
-- caller's organisation (and, for a department lead, to what their scope
-- sees, which for the fleet tables is nothing).

-- name: OverviewCounts :one
-- The overview's counters in one round trip: the organisation's time
-- zone (UTC for a platform administrator, who has none), gateways online
-- of total (revoked ones left out) and the events received in the last
-- hour (application windows and door events).
SELECT
  COALESCE((SELECT o.time_zone FROM organizations o WHERE o.id = @organization_id::bigint), 'UTC')::text AS time_zone,
  (SELECT count(*) FROM gateway_instances g WHERE g.revoked_at IS NULL)::bigint AS gateways_total,
  (SELECT count(*) FROM gateway_instances g WHERE g.revoked_at IS NULL AND g.status = 'online')::bigint AS gateways_online,
  (SELECT count(*) FROM monitoring_read.active_windows w WHERE w.datetime >= now() - interval '1 hour')::bigint AS windows_last_hour,
  (SELECT count(*) FROM monitoring_read.device_events d WHERE d.datetime >= now() - interval '1 hour')::bigint AS door_events_last_hour;

-- name: GatewayBuffers :many
-- Each gateway (not revoked) with its latest status snapshot's buffer
-- level, queue depth and connected agents, online first.
SELECT g.id, g.name, g.status, g.last_seen_at,
       s.buffer_usage, s.queue_depth, s.connected_agents
FROM gateway_instances g
LEFT JOIN LATERAL (
  SELECT x."timestamp", x.buffer_usage, x.queue_depth, x.connected_agents
  FROM gateway_status_snapshots x WHERE x.gateway_id = g.id
  ORDER BY x."timestamp" DESC LIMIT 1
) s ON true
WHERE g.revoked_at IS NULL
ORDER BY g.status = 'online' DESC, g.name, g.id
LIMIT @max_rows;

-- name: OrganizationTimeZone :one
-- The organisation's IANA time zone, for dates on the other pages.
SELECT time_zone FROM organizations WHERE id = $1;

-- name: TopApplications :many
-- An employee's top applications since @since (their day's start in the
-- organisation's zone) by the time their windows were active, with the
-- latest window title of each; sids are the employee's windows_sid
-- identities.
SELECT w.process_name,
       sum(w.duration_seconds)::bigint AS seconds,
       COALESCE((array_agg(w.window_title ORDER BY w.datetime DESC))[1], '')::text AS last_title
FROM monitoring_read.active_windows w
WHERE w.user_sid = ANY(@sids::text[]) AND w.datetime >= @since::timestamptz
GROUP BY w.process_name
ORDER BY seconds DESC, w.process_name
LIMIT @max_rows;

-- name: DepartmentsWithCounts :many
-- The departments the caller sees (a department lead: their subtree),
-- each with its parent and the employees in it (not in its
-- subdepartments), for the departments tree in one round trip.
SELECT d.id, d.parent_id, d.name, count(e.id)::bigint AS employees
FROM departments d
LEFT JOIN employees e ON e.department_id = d.id
GROUP BY d.id
ORDER BY d.name, d.id
LIMIT @max_rows;

-- name: DeviceEvents :many
-- A device's latest events of the last seven days (its own, by id or by
-- the serial it reports), newest first: the device page's live list of
-- badges and door events. The bound keeps the walk down the
-- organisation's (organization_id, datetime) index short for a device
-- that is seldom used.
SELECT e.id, e.datetime, e.door, e.major_code, e.minor_code, e.employee_number, e.card_number
FROM monitoring_read.device_events e
WHERE e.datetime >= now() - interval '7 days'
  AND (e.device_id = @device_id::bigint
       OR e.device_serial = (SELECT d.serial FROM devices d WHERE d.id = @device_id::bigint))
ORDER BY e.datetime DESC, e.id DESC
LIMIT @max_rows;

-- name: DayWindows :many
-- An employee's application windows of one day ([@day_start, @day_end)),
-- in order: the day view's timeline; sids are the employee's windows_sid
-- identities.
SELECT w.datetime, w.duration_seconds, w.process_name, w.window_title
FROM monitoring_read.active_windows w
WHERE w.user_sid = ANY(@sids::text[]) AND w.datetime >= @day_start::timestamptz AND w.datetime < @day_end::timestamptz
ORDER BY w.datetime, w.id
LIMIT @max_rows;

-- name: UserLanguage :one
-- The signed-in user's own language (NULL: the browser's choice).
SELECT language FROM users WHERE id = app.user_id();

-- name: SetUserLanguage :one
-- Sets the signed-in user's own language (migration 00041's function:
-- their row's language only); false when the context has no user.
SELECT app.set_user_language(sqlc.narg(language)::text)::boolean AS ok;
