-- The rollup maintainer's calls (maintainer.go), as the ingest role,
-- through the definer functions of migration 00026.

-- name: TimeZone :one
SELECT monitoring.activity_time_zone(@organization_id::bigint)::text;

-- name: Store :exec
SELECT monitoring.activity_store(@organization_id::bigint, @user_sid::text, @day::date, @time_zone::text, @active_minutes::bytea,
    sqlc.narg(first_at)::timestamptz, sqlc.narg(last_at)::timestamptz, @kinds::text[], @process_names::text[], @hosts::text[],
    @seconds::bigint[], @events::bigint[]);
