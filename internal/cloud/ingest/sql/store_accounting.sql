-- name: StoreAccounting :one
-- In the separate time-series store's transaction: what this write
-- accounted for the batch's key (accepted: events newly stored; resent:
-- re-sent seqs),
-- added to what an earlier attempt under the same key committed there
-- without its accounting reaching the main database. Returns the totals.
INSERT INTO ingest_store_accounting (organization_id, gateway_id, idempotency_key, accepted, resent)
VALUES (@organization_id, @gateway_id, @idempotency_key, @accepted, @resent::bigint[])
ON CONFLICT (gateway_id, idempotency_key) DO UPDATE
    SET accepted = ingest_store_accounting.accepted + EXCLUDED.accepted,
        resent = ingest_store_accounting.resent || EXCLUDED.resent
RETURNING accepted, resent;
