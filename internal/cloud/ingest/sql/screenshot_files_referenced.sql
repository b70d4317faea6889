-- Which of $3 (files of organisation $1's screenshots of UTC day $2) a
-- stored row references, in either schema.
SELECT monitoring.screenshot_files_referenced($1, $2::date, $3::text[])
