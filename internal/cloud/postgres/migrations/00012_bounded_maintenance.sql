-- Maintenance functions the ingest role cannot abuse (issue 11, deliverable 2).
--
-- The SECURITY DEFINER maintenance functions of 00002/00004, 00006 and 00007
-- took the current time or a range from the caller, so anyone who could run
-- SQL as staff_ingest could drop every organisation's partitions
-- (drop_expired_partitions('9999-12-31')), expire every pending command
-- (gateway_commands_sweep('9999-12-31', ...)), mark every gateway offline
-- (gateways_mark_offline('9999-12-31')) or create thousands of tables
-- (ensure_partitions('5000-01-01', '5001-02-04')). Their replacements take no
-- caller-chosen time (they read the server's clock, now()) and bound what one
-- call can do:
--
-- * monitoring.ensure_recent_partitions(behind, ahead) creates only days in
--   [today - least(behind, 62, retention), today + least(ahead, 3)], at most
--   200 partitions per call;
-- * monitoring.drop_expired_partitions() drops only partitions wholly past
--   their table's retention measured from now(), oldest first, at most 100
--   per call;
-- * gateway_commands_sweep(backoff) sweeps at now(); the backoff is clamped
--   to [0, 5 minutes] (it only delays redeliveries of late commands);
-- * gateways_mark_offline_after(silence) marks offline the online gateways
--   silent for longer than greatest(silence, 30 seconds), measured from now();
-- * gateway_commands_due(gateways) answers only for the gateways of the
--   transaction's organisation, and nothing without one (the hub asks once
--   per organisation of the sockets and long-polls it holds).
--
-- The old signatures stay (the owner may still run them by hand) but no
-- runtime role may execute them. monitoring.ensure_day_partitions (00010) is
-- already bounded (62 days, never past retention, at most 2 days ahead).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION monitoring.ensure_recent_partitions(p_behind integer, p_ahead integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    max_created CONSTANT integer := 200;
    today date := (now() AT TIME ZONE 'UTC')::date;
    s text;
    r record;
    d date;
    created integer := 0;
    pname text;
BEGIN
    FOREACH s IN ARRAY ARRAY['monitoring', 'monitoring_fallback'] LOOP
        CONTINUE WHEN s = 'monitoring' AND monitoring.storage_kind() <> 'partitions';
        CONTINUE WHEN to_regnamespace(s) IS NULL;
        FOR r IN SELECT table_name, days FROM monitoring.retention ORDER BY table_name LOOP
            d := today - least(greatest(coalesce(p_behind, 0), 0), 62, r.days);
            WHILE d <= today + least(greatest(coalesce(p_ahead, 0), 0), 3) LOOP
                pname := r.table_name || '_p' || to_char(d, 'YYYYMMDD');
                IF to_regclass(format('%I.%I', s, pname)) IS NULL THEN
                    PERFORM pg_advisory_xact_lock(hashtext(s || '.' || pname));
                    IF to_regclass(format('%I.%I', s, pname)) IS NULL THEN
                        IF created >= max_created THEN
                            RETURN created; -- the next run creates the rest
                        END IF;
                        EXECUTE format(
                            'CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                            s, pname, s, r.table_name, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
                        EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', s, pname);
                        created := created + 1;
                    END IF;
                END IF;
                d := d + 1;
            END LOOP;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;

CREATE FUNCTION monitoring.drop_expired_partitions() RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    max_dropped CONSTANT integer := 100;
    r record;
BEGIN
    FOR r IN
        SELECT n.nspname, c.relname
        FROM monitoring.retention ret
        CROSS JOIN unnest(ARRAY['monitoring', 'monitoring_fallback']) AS s(schema_name)
        JOIN pg_inherits i ON i.inhparent = to_regclass(format('%I.%I', s.schema_name, ret.table_name))
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname ~ '_p[0-9]{8}$'
          AND (s.schema_name = 'monitoring_fallback' OR monitoring.storage_kind() = 'partitions')
          AND ((to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC')
              <= now() - make_interval(days => ret.days)
        ORDER BY to_date(right(c.relname, 8), 'YYYYMMDD'), n.nspname, c.relname
        LIMIT max_dropped
    LOOP
        EXECUTE format('DROP TABLE %I.%I', r.nspname, r.relname);
        RETURN NEXT r.nspname || '.' || r.relname;
    END LOOP;
END $$;

-- The sweep of 00006 at the server's clock: deliveries not acknowledged by
-- their deadline go back to pending after a backoff (p_backoff clamped to
-- [0, 5 minutes], × 2^(attempts-1), at most 5 minutes) or, with no attempt
-- left, fail; pending commands past their expiry expire.
CREATE FUNCTION gateway_commands_sweep(p_backoff interval)
RETURNS TABLE (id uuid, gateway_id uuid, status text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
    backoff interval := least(greatest(coalesce(p_backoff, interval '0'), interval '0'), interval '5 minutes');
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
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
    PERFORM set_config('app.current_role', saved, true);
END $$;

-- Mark offline the online gateways not heard from for longer than
-- greatest(p_silence, 30 seconds), across organisations; returns their ids.
CREATE FUNCTION gateways_mark_offline_after(p_silence interval) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
    silence interval := greatest(coalesce(p_silence, interval '0'), interval '30 seconds');
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    RETURN QUERY
        UPDATE public.gateway_instances SET status = 'offline', updated_at = now()
         WHERE status = 'online' AND (last_seen_at IS NULL OR last_seen_at < now() - silence)
        RETURNING gateway_instances.id;
    PERFORM set_config('app.current_role', saved, true);
END $$;

-- Which of the given gateways have a command due now, among the gateways
-- of the transaction's organisation (app.current_organization_id) only:
-- another organisation's gateway id reveals nothing, and without an
-- organisation context nothing is due. The hub asks once per organisation.
CREATE OR REPLACE FUNCTION gateway_commands_due(p_gateways uuid[]) RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
    org bigint := NULLIF(current_setting('app.current_organization_id', true), '')::bigint;
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    RETURN QUERY
        SELECT DISTINCT c.gateway_id FROM public.gateway_commands c
         WHERE c.gateway_id = ANY(p_gateways) AND c.status = 'pending'
           AND c.next_attempt_at <= now() AND c.expires_at > now()
           AND c.organization_id = org; -- no organisation context: nothing
    PERFORM set_config('app.current_role', saved, true);
END $$;

REVOKE ALL ON FUNCTION monitoring.ensure_recent_partitions(integer, integer), monitoring.drop_expired_partitions(),
    gateway_commands_sweep(interval), gateways_mark_offline_after(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.ensure_recent_partitions(integer, integer), monitoring.drop_expired_partitions(),
    gateway_commands_sweep(interval), gateways_mark_offline_after(interval) TO staff_ingest;
REVOKE EXECUTE ON FUNCTION monitoring.ensure_partitions(date, date), monitoring.drop_expired_partitions(timestamptz),
    gateway_commands_sweep(timestamptz, interval), gateways_mark_offline(timestamptz) FROM staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
GRANT EXECUTE ON FUNCTION monitoring.ensure_partitions(date, date), monitoring.drop_expired_partitions(timestamptz),
    gateway_commands_sweep(timestamptz, interval), gateways_mark_offline(timestamptz) TO staff_ingest;
CREATE OR REPLACE FUNCTION gateway_commands_due(p_gateways uuid[]) RETURNS SETOF uuid
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
DROP FUNCTION gateways_mark_offline_after(interval);
DROP FUNCTION gateway_commands_sweep(interval);
DROP FUNCTION monitoring.drop_expired_partitions();
DROP FUNCTION monitoring.ensure_recent_partitions(integer, integer);
-- +goose StatementEnd
