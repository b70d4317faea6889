DELETE FROM ingest_batches WHERE gateway_id = $1 AND idempotency_key = $2 AND status = 'in_flight'
