-- The verified, resumable re-sync of the fallback into the store (resync.go).

-- name: FallbackOrganizations :many
SELECT monitoring.fallback_organizations()::bigint AS organization_id ORDER BY 1;

-- name: FallbackRows :one
SELECT monitoring.fallback_rows()::bigint AS remaining;

-- name: FallbackDays :many
SELECT monitoring.fallback_days(@table_name::text)::date AS day;

-- name: ChunkChecksum :one
-- Count and order-independent checksum of these keys' rows in schema.table.
SELECT c.n::bigint AS n, c.checksum::text AS checksum
  FROM monitoring.chunk_checksum(@schema_name::text, @table_name::text, @ids::uuid[], @datetimes::timestamptz[]) AS c(n, checksum);

-- name: FallbackChunk :one
-- Up to max_rows rows of the day from the fallback, in key order, as JSON,
-- with their keys as two arrays.
WITH c AS (SELECT monitoring.fallback_chunk(@table_name::text, @day::date, @max_rows::integer) AS rows)
SELECT coalesce(array_agg((r->>'id')::uuid), '{}')::uuid[] AS ids,
       coalesce(array_agg((r->>'datetime')::timestamptz), '{}')::timestamptz[] AS datetimes,
       (SELECT rows FROM c)::jsonb AS payload
  FROM c, jsonb_array_elements(c.rows) r;

-- name: EnsureStorePartition :exec
SELECT monitoring.ensure_day_partitions('monitoring', ARRAY[@table_name::text], ARRAY[@day::date]);

-- name: ResyncInsert :exec
SELECT monitoring.resync_insert(@table_name::text, @payload::jsonb);

-- name: FallbackDelete :exec
SELECT monitoring.fallback_delete(@table_name::text, @ids::uuid[], @datetimes::timestamptz[]);
