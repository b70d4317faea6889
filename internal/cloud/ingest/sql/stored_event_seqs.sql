-- The stored sequence numbers of events found already stored, in the
-- transaction's organisation: $1 schema, $2 table, $3 ids, $4 datetimes.
SELECT id::text, seq FROM monitoring.stored_event_seqs($1, $2, $3::uuid[], $4::timestamptz[])
