-- Per-gateway sequence accounting: $3 highest seq in the batch, $4 events
-- newly stored, $5 events the gateway reports dropped, $6 sequence numbers
-- newly accounted as re-sent copies of stored events (insert_resent_seqs).
-- events_accepted counts every sequence number accounted as received, so
-- max_seq - events_accepted - events_dropped is what is unaccounted for.
INSERT INTO gateway_ingest_stats (organization_id, gateway_id, max_seq, events_accepted, events_dropped, events_resent, updated_at)
VALUES ($1, $2, $3, $4::bigint + $6::bigint, $5, $6::bigint, now())
ON CONFLICT (gateway_id) DO UPDATE
    SET max_seq = greatest(gateway_ingest_stats.max_seq, EXCLUDED.max_seq),
        events_accepted = gateway_ingest_stats.events_accepted + EXCLUDED.events_accepted,
        events_dropped = gateway_ingest_stats.events_dropped + EXCLUDED.events_dropped,
        events_resent = gateway_ingest_stats.events_resent + EXCLUDED.events_resent,
        updated_at = now()
RETURNING max_seq - events_accepted - events_dropped
