-- The command sweep skips rows being acknowledged (issue 17, part 3).
--
-- gateway_commands_sweep (00014) updated every late or expired row it
-- found, waiting for each row another transaction held. At 10,000 gateways
-- a release's received acknowledgements, late past the 30 s ack timeout,
-- queued behind the sweep's long UPDATE (thousands of redeliveries, each
-- row's status event at commit under the events' lock), every replica's
-- pool filled with blocked acknowledgements, and the gateways' policy
-- fetches timed out waiting for a connection. Now the sweep locks its rows
-- with FOR UPDATE SKIP LOCKED first: a row an acknowledgement (or a claim,
-- or the other replica's sweep) holds is left for the next sweep — an
-- acknowledgement that commits makes it no longer late — and an
-- acknowledgement never waits for a sweep longer than the sweep's own
-- statement on rows it already holds.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION gateway_commands_sweep(p_backoff interval)
RETURNS TABLE (id uuid, gateway_id uuid, status text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    backoff interval := least(greatest(coalesce(p_backoff, interval '0'), interval '0'), interval '5 minutes');
BEGIN
    RETURN QUERY
    WITH late_rows AS (
        SELECT c.id FROM public.gateway_commands c
         WHERE c.status = 'delivered' AND c.ack_deadline < now()
           FOR UPDATE SKIP LOCKED
    ), late AS (
        UPDATE public.gateway_commands c
           SET status = CASE WHEN c.attempts >= c.max_attempts THEN 'failed' ELSE 'pending' END,
               error = CASE WHEN c.attempts >= c.max_attempts
                            THEN format('not acknowledged after %s attempts', c.attempts) ELSE c.error END,
               completed_at = CASE WHEN c.attempts >= c.max_attempts THEN now() ELSE NULL END,
               next_attempt_at = now() + least(backoff * power(2, greatest(c.attempts - 1, 0)), interval '5 minutes'),
               ack_deadline = NULL
          FROM late_rows l
         WHERE c.id = l.id
        RETURNING c.id, c.gateway_id, c.status
    ), old_rows AS (
        SELECT c.id FROM public.gateway_commands c
         WHERE c.status = 'pending' AND c.expires_at <= now()
           FOR UPDATE SKIP LOCKED
    ), old AS (
        UPDATE public.gateway_commands c
           SET status = 'expired', completed_at = now(), error = 'expired before delivery'
          FROM old_rows o
         WHERE c.id = o.id
        RETURNING c.id, c.gateway_id, c.status
    )
    SELECT * FROM late UNION ALL SELECT * FROM old;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION gateway_commands_sweep(p_backoff interval)
RETURNS TABLE (id uuid, gateway_id uuid, status text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    backoff interval := least(greatest(coalesce(p_backoff, interval '0'), interval '0'), interval '5 minutes');
BEGIN
    RETURN QUERY
    WITH late AS (
        UPDATE public.gateway_commands c
           SET status = CASE WHEN c.attempts >= c.max_attempts THEN 'failed' ELSE 'pending' END,
               error = CASE WHEN c.attempts >= c.max_attempts
                            THEN format('not acknowledged after %s attempts', c.attempts) ELSE c.error END,
               completed_at = CASE WHEN c.attempts >= c.max_attempts THEN now() ELSE NULL END,
               next_attempt_at = now() + least(backoff * power(2, greatest(c.attempts - 1, 0)), interval '5 minutes'),
               ack_deadline = NULL
         WHERE c.status = 'delivered' AND c.ack_deadline < now()
        RETURNING c.id, c.gateway_id, c.status
    ), old AS (
        UPDATE public.gateway_commands c
           SET status = 'expired', completed_at = now(), error = 'expired before delivery'
         WHERE c.status = 'pending' AND c.expires_at <= now()
        RETURNING c.id, c.gateway_id, c.status
    )
    SELECT * FROM late UNION ALL SELECT * FROM old;
END $$;
-- +goose StatementEnd
