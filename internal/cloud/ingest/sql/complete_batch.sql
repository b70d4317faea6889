UPDATE ingest_batches
   SET status = 'done', response_status = $3, response_body = $4, completed_at = now()
 WHERE gateway_id = $1 AND idempotency_key = $2 AND status = 'in_flight'
