-- Once the main database committed the batch: its store-side record is no
-- longer needed; records older than two days go too.
DELETE FROM ingest_store_accounting
 WHERE (gateway_id = $1 AND idempotency_key = $2) OR created_at < now() - interval '2 days'
