-- $1 organisation, $2 gateway, then one array per column; the number of rows
-- inserted (duplicates skipped). The schema argument is swapped for the
-- fallback's (ingest.go).
SELECT monitoring.insert_active_windows('monitoring', $1::bigint, $2::uuid, $3::uuid[], $4::bigint[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::integer[])
