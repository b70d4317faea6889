-- The stored screenshots among a batch's events, in the transaction's
-- organisation, with the file each row references: $1 schema, $2 ids,
-- $3 datetimes.
SELECT id::text, seq, file_path FROM monitoring.stored_screenshots($1, $2::uuid[], $3::timestamptz[])
