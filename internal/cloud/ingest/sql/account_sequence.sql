-- name: AccountSequence :one
-- Per-gateway sequence accounting: max_seq the highest seq in the batch,
-- accepted the events newly stored, dropped those the gateway reports
-- dropped, resent the sequence numbers newly accounted as re-sent copies of
-- stored events (insert_resent_seqs).
-- events_accepted counts every sequence number accounted as received, so
-- max_seq - events_accepted - events_dropped is what is unaccounted for.
INSERT INTO gateway_ingest_stats (organization_id, gateway_id, max_seq, events_accepted, events_dropped, events_resent, updated_at)
VALUES (sqlc.arg(organization_id), sqlc.arg(gateway_id), sqlc.arg(max_seq), sqlc.arg(accepted)::bigint + sqlc.arg(resent)::bigint, sqlc.arg(dropped), sqlc.arg(resent)::bigint, now())
ON CONFLICT (gateway_id) DO UPDATE
    SET max_seq = greatest(gateway_ingest_stats.max_seq, EXCLUDED.max_seq),
        events_accepted = gateway_ingest_stats.events_accepted + EXCLUDED.events_accepted,
        events_dropped = gateway_ingest_stats.events_dropped + EXCLUDED.events_dropped,
        events_resent = gateway_ingest_stats.events_resent + EXCLUDED.events_resent,
        updated_at = now()
RETURNING (max_seq - events_accepted - events_dropped)::bigint AS gap;
