-- The control channel's database side: a NOTIFY when a gateway's key is
-- revoked or replaced (the replica holding its socket closes it at once),
-- and the sweep that marks gateways offline after missed heartbeats.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION gateway_instances_revoked_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_notify('gateway_revoked', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER gateway_instances_revoked_notify AFTER UPDATE OF revoked_at, api_key_hash ON gateway_instances
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL OR NEW.api_key_hash IS DISTINCT FROM OLD.api_key_hash)
    EXECUTE FUNCTION gateway_instances_revoked_notify();

-- Mark online gateways not heard from since p_before offline, across
-- organisations; returns their ids.
CREATE FUNCTION gateways_mark_offline(p_before timestamptz) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    RETURN QUERY
        UPDATE public.gateway_instances SET status = 'offline', updated_at = now()
         WHERE status = 'online' AND (last_seen_at IS NULL OR last_seen_at < p_before)
        RETURNING id;
    PERFORM set_config('app.current_role', saved, true);
END $$;
REVOKE ALL ON FUNCTION gateways_mark_offline(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateways_mark_offline(timestamptz) TO staff_ingest;

-- Which of the given gateways have a command due now: the replicas ask
-- for their connected gateways on every sweep, which catches redeliveries
-- whose backoff has passed and any notification lost in transit.
CREATE FUNCTION gateway_commands_due(p_gateways uuid[]) RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    RETURN QUERY
        SELECT DISTINCT c.gateway_id FROM public.gateway_commands c
         WHERE c.gateway_id = ANY(p_gateways) AND c.status = 'pending'
           AND c.next_attempt_at <= now() AND c.expires_at > now();
    PERFORM set_config('app.current_role', saved, true);
END $$;
REVOKE ALL ON FUNCTION gateway_commands_due(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateway_commands_due(uuid[]) TO staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION gateway_commands_due(uuid[]);
DROP FUNCTION gateways_mark_offline(timestamptz);
DROP TRIGGER gateway_instances_revoked_notify ON gateway_instances;
DROP FUNCTION gateway_instances_revoked_notify();
-- +goose StatementEnd
