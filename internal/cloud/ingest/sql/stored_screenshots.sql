-- name: StoredScreenshots :many
-- The stored screenshots among a batch's events, in the transaction's
-- organisation, with the file each row references.
SELECT s.id::text AS id, s.seq::bigint AS seq, s.file_path::text AS file_path
  FROM monitoring.stored_screenshots(@schema_name::text, CAST(sqlc.arg(ids)::text[] AS uuid[]), @datetimes::timestamptz[]) AS s(id, seq, file_path);
