-- name: StoredEventSeqs :many
-- The stored sequence numbers of events found already stored, in the
-- transaction's organisation (the function's schema and table are
-- arguments, not identifiers: it checks them against its own list).
SELECT s.id::text AS id, s.seq::bigint AS seq
  FROM monitoring.stored_event_seqs(@schema_name::text, @table_name::text, CAST(sqlc.arg(ids)::text[] AS uuid[]), @datetimes::timestamptz[]) AS s(id, datetime, seq);
