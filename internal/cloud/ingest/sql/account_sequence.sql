-- Per-gateway sequence accounting: $3 highest seq in the batch, $4 events
-- newly stored, $5 events the gateway reports dropped.
INSERT INTO gateway_ingest_stats (organization_id, gateway_id, max_seq, events_accepted, events_dropped, updated_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (gateway_id) DO UPDATE
    SET max_seq = greatest(gateway_ingest_stats.max_seq, EXCLUDED.max_seq),
        events_accepted = gateway_ingest_stats.events_accepted + EXCLUDED.events_accepted,
        events_dropped = gateway_ingest_stats.events_dropped + EXCLUDED.events_dropped,
        updated_at = now()
RETURNING max_seq - events_accepted - events_dropped
