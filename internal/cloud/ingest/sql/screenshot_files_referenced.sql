-- name: ScreenshotFilesReferenced :many
-- Which of the files (of an organisation's screenshots of one UTC day) a
-- stored row references, in either schema.
SELECT monitoring.screenshot_files_referenced(@organization_id::bigint, CAST(sqlc.arg(day)::text AS date), @files::text[]);
