-- The command queue's moving parts (DESIGN.md §2 "Control down"): a NOTIFY
-- on every new command, so that the Agent API replica holding the gateway's
-- socket wakes at once, and the sweep that retries unacknowledged deliveries
-- with backoff, fails exhausted commands and expires old ones.

-- +goose Up
-- +goose StatementBegin
ALTER TABLE gateway_commands ADD COLUMN received_at timestamptz;
CREATE INDEX gateway_commands_deadline ON gateway_commands (ack_deadline) WHERE status = 'delivered';
CREATE INDEX gateway_commands_expiry ON gateway_commands (expires_at) WHERE status = 'pending';

CREATE FUNCTION gateway_commands_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_notify('gateway_commands', NEW.gateway_id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER gateway_commands_notify AFTER INSERT OR UPDATE OF status ON gateway_commands
    FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION gateway_commands_notify();

-- Sweep every organisation's queue at p_now: deliveries not acknowledged by
-- their deadline go back to pending after a backoff (p_backoff × 2^(attempts-1),
-- at most 5 minutes) or, with no attempt left, fail; pending commands past
-- their expiry expire. Returns the ids of the commands changed, with their
-- new status. SECURITY DEFINER because the sweep crosses organisations.
CREATE FUNCTION gateway_commands_sweep(p_now timestamptz, p_backoff interval)
RETURNS TABLE (id uuid, gateway_id uuid, status text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    RETURN QUERY
    WITH late AS (
        UPDATE public.gateway_commands c
           SET status = CASE WHEN c.attempts >= c.max_attempts THEN 'failed' ELSE 'pending' END,
               error = CASE WHEN c.attempts >= c.max_attempts
                            THEN format('not acknowledged after %s attempts', c.attempts) ELSE c.error END,
               completed_at = CASE WHEN c.attempts >= c.max_attempts THEN p_now ELSE NULL END,
               next_attempt_at = p_now + least(p_backoff * power(2, greatest(c.attempts - 1, 0)), interval '5 minutes'),
               ack_deadline = NULL
         WHERE c.status = 'delivered' AND c.ack_deadline < p_now
        RETURNING c.id, c.gateway_id, c.status
    ), old AS (
        UPDATE public.gateway_commands c
           SET status = 'expired', completed_at = p_now, error = 'expired before delivery'
         WHERE c.status = 'pending' AND c.expires_at <= p_now
        RETURNING c.id, c.gateway_id, c.status
    )
    SELECT * FROM late UNION ALL SELECT * FROM old;
    PERFORM set_config('app.current_role', saved, true);
END $$;
REVOKE ALL ON FUNCTION gateway_commands_sweep(timestamptz, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateway_commands_sweep(timestamptz, interval) TO staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION gateway_commands_sweep(timestamptz, interval);
DROP TRIGGER gateway_commands_notify ON gateway_commands;
DROP FUNCTION gateway_commands_notify();
DROP INDEX gateway_commands_expiry, gateway_commands_deadline;
ALTER TABLE gateway_commands DROP COLUMN received_at;
-- +goose StatementEnd
