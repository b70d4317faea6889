SELECT endpoint, request_hash, status, response_status, response_body
FROM ingest_batches
WHERE gateway_id = $1 AND idempotency_key = $2
