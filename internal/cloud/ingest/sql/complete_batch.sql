-- name: CompleteBatch :execrows
UPDATE ingest_batches
   SET status = 'done', response_status = @response_status, response_body = @response_body, completed_at = now()
 WHERE gateway_id = @gateway_id AND idempotency_key = @idempotency_key AND status = 'in_flight';
