-- Hand-written (loaded by sqlfile, not compiled by sqlc): calls of the
-- RETURNS TABLE functions of migration 00026, whose result columns sqlc
-- cannot see; scanned by hand (settings.go's caller in engine.go,
-- maintainer.go). Nullable columns stay nullable.

-- name: Settings
SELECT time_zone, policy FROM app.report_settings();

-- name: Claim
SELECT organization_id, user_sid, hour FROM monitoring.activity_claim($1, $2);

-- name: Source
SELECT kind, process_name, url, datetime, duration_seconds
FROM monitoring.activity_source($1, $2, $3, $4);

-- name: Backlog
SELECT hours, sids, oldest FROM monitoring.activity_backlog($1);
