-- name: ForgetStoreAccounting :exec
-- Once the main database committed the batch: its store-side record is no
-- longer needed; records older than two days go too.
DELETE FROM ingest_store_accounting
 WHERE (gateway_id = @gateway_id AND idempotency_key = @idempotency_key) OR created_at < now() - interval '2 days';
