-- The five time series' inserts, hand-written (loaded by sqlfile, not
-- compiled by sqlc): they are the ingest hot path, called with an argument
-- list built generically per series from column arrays (columns.go), and
-- each statement is used twice, as written for schema monitoring and, with
-- that schema literal swapped, for monitoring_fallback (ingest.go). sqlc's
-- typed functions would change that call shape. Each calls the series'
-- bounded definer function (00020): organisation, gateway, then one array
-- per column; it returns the number of rows inserted (duplicates skipped).

-- name: InsertActiveWindows :one
SELECT monitoring.insert_active_windows('monitoring', $1::bigint, $2::uuid, $3::uuid[], $4::bigint[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::integer[]);

-- name: InsertVisitedSites :one
SELECT monitoring.insert_visited_sites('monitoring', $1::bigint, $2::uuid, $3::uuid[], $4::bigint[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::integer[]);

-- name: InsertUserSessions :one
SELECT monitoring.insert_user_sessions('monitoring', $1::bigint, $2::uuid, $3::uuid[], $4::bigint[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::timestamptz[]);

-- name: InsertScreenshots :one
SELECT monitoring.insert_screenshots('monitoring', $1::bigint, $2::uuid, $3::uuid[], $4::bigint[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::bigint[], $10::text[], $11::timestamptz[]);

-- name: InsertDeviceEvents :one
SELECT monitoring.insert_device_events('monitoring', $1::bigint, $2::uuid, $3::uuid[], $4::bigint[], $5::bigint[], $6::text[],
    $7::timestamptz[], $8::text[], $9::text[], $10::integer[], $11::integer[], $12::integer[], $13::text[], $14::text[]);
