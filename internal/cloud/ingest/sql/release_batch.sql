-- name: ReleaseBatch :exec
DELETE FROM ingest_batches WHERE gateway_id = @gateway_id AND idempotency_key = @idempotency_key AND status = 'in_flight';
