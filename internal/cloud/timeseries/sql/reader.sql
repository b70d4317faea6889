-- The ids of one series' events in [from, to) visible to the tenant,
-- through the security_barrier views (reader.go). One query per series:
-- the view is an identifier, not a parameter.

-- name: ActiveWindowIDs :many
SELECT id FROM monitoring_read.active_windows WHERE datetime >= @from_time AND datetime < @to_time;

-- name: VisitedSiteIDs :many
SELECT id FROM monitoring_read.visited_sites WHERE datetime >= @from_time AND datetime < @to_time;

-- name: ScreenshotIDs :many
SELECT id FROM monitoring_read.screenshots WHERE datetime >= @from_time AND datetime < @to_time;

-- name: UserSessionIDs :many
SELECT id FROM monitoring_read.user_sessions WHERE datetime >= @from_time AND datetime < @to_time;

-- name: DeviceEventIDs :many
SELECT id FROM monitoring_read.device_events WHERE datetime >= @from_time AND datetime < @to_time;
