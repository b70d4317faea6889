-- name: ClaimBatch :many
-- Claim an idempotency key for this request. A new key is inserted
-- in_flight; an in_flight key whose holder died (locked_until passed) with
-- the same body is taken over. RETURNING a row means the caller owns it.
INSERT INTO ingest_batches (organization_id, gateway_id, idempotency_key, endpoint, request_hash, status, locked_until)
VALUES (@organization_id, @gateway_id, @idempotency_key, @endpoint, @request_hash, 'in_flight', now() + @lock_for::interval)
ON CONFLICT (gateway_id, idempotency_key) DO UPDATE
    SET locked_until = EXCLUDED.locked_until
    WHERE ingest_batches.status = 'in_flight'
      AND ingest_batches.locked_until < now()
      AND ingest_batches.request_hash = EXCLUDED.request_hash
      AND ingest_batches.endpoint = EXCLUDED.endpoint
RETURNING 1;
