-- name: LookupBatch :one
SELECT endpoint, request_hash, status, response_status, response_body
FROM ingest_batches
WHERE gateway_id = @gateway_id AND idempotency_key = @idempotency_key;
