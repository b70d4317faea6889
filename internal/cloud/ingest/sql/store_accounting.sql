-- In the separate time-series store's transaction: what this write
-- accounted for the batch's key ($4 events newly stored, $5 re-sent seqs),
-- added to what an earlier attempt under the same key committed there
-- without its accounting reaching the main database. Returns the totals.
INSERT INTO ingest_store_accounting (organization_id, gateway_id, idempotency_key, accepted, resent)
VALUES ($1, $2, $3, $4, $5::bigint[])
ON CONFLICT (gateway_id, idempotency_key) DO UPDATE
    SET accepted = ingest_store_accounting.accepted + EXCLUDED.accepted,
        resent = ingest_store_accounting.resent || EXCLUDED.resent
RETURNING accepted, resent
