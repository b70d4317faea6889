-- A tenant context the database verifies, ADMIN only through its own login
-- role, and runtime roles that can do only their job (issue 11,
-- deliverables 1 and 2; DESIGN.md §3).
--
-- Before: every policy and monitoring_read view trusted the plain settings
-- app.current_organization_id and app.current_role, which any statement of
-- a runtime role can set (SET app."current_role" = 'ADMIN' read every
-- organisation), and the SECURITY DEFINER functions forged ADMIN with
-- set_config to cross organisations.
--
-- Now:
-- * The application signs the context it sets: one transaction-local
--   setting, app.tenant =
--     v1|<key id>|<organisation>|<app role>|<user id>|<scope>|<actor, hex>|<expiry, unix s>|<HMAC-SHA-256, hex>
--   keyed with a secret the runtime roles cannot read (app.context_keys,
--   owner-only; the inner and outer HMAC pads are stored, so verification
--   needs only the built-in sha256(), no extension). Several keys may be
--   valid at once (the key id picks one): rotation installs a new key,
--   rolls the services, then retires the old one.
-- * app.context() verifies it (signature, known key, not expired at the
--   transaction's start) and returns it, or NULL; app.org_id(),
--   app.app_role(), app.user_id(), app.scope() and app.actor() read one
--   field each, NULL unless verified. Policies and views call them as
--   scalar subqueries, (SELECT app.org_id()), which the planner runs once
--   per statement as an InitPlan, not once per row.
-- * app.all_organizations() is true only for a verified ADMIN context used
--   by the login role staff_admin (bootstrap.sql), and for staff_owner: the
--   owner is NOLOGIN and is reached only through migrations and the
--   SECURITY DEFINER functions below, which therefore no longer forge ADMIN
--   (RLS stays forced).
-- * The ingest role: no SELECT on the time series; INSERT into the
--   time-series parents (both schemas) only for the verified organisation
--   (row-level security on the parents, not forced, so the owner's views
--   and definer functions are unaffected; under TimescaleDB, which refuses
--   RLS with compression, a row trigger checks the same); no SELECT or
--   DELETE on the fallback tables: the re-sync reads and deletes fallback
--   rows through bounded definer functions that act only in the verified
--   organisation; no INSERT or SELECT on audit_log.
-- * Audit rows are written only by app.audit(), which stamps the
--   organisation, the acting user and the actor from the verified context.
--
-- The TimescaleDB branch (a trigger instead of RLS on the hypertables)
-- was first run on a real TimescaleDB in issue 12 (see 00017).

-- +goose Up
-- +goose StatementBegin
CREATE SCHEMA app;
REVOKE ALL ON SCHEMA app FROM PUBLIC;

-- HMAC keys for tenant contexts. Only the owner reads this table.
CREATE TABLE app.context_keys (
    id         text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,32}$'),
    inner_pad  bytea NOT NULL CHECK (length(inner_pad) = 64),
    outer_pad  bytea NOT NULL CHECK (length(outer_pad) = 64),
    created_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON app.context_keys FROM PUBLIC;

CREATE TYPE app.tenant_context AS (
    organization_id bigint,
    app_role        text,
    user_id         bigint,
    scope           text,
    actor           text
);

-- The verified context of this transaction, or NULL: unsigned, malformed,
-- tampered, signed with an unknown key or expired contexts all give NULL.
CREATE FUNCTION app.context() RETURNS app.tenant_context
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    raw text := current_setting('app.tenant', true);
    f   text[];
    k   record;
    res app.tenant_context;
BEGIN
    IF raw IS NULL OR raw = '' OR length(raw) > 1200 THEN
        RETURN NULL;
    END IF;
    f := string_to_array(raw, '|');
    IF cardinality(f) <> 9 OR f[1] <> 'v1' THEN
        RETURN NULL;
    END IF;
    SELECT inner_pad, outer_pad INTO k FROM app.context_keys WHERE id = f[2];
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(array_to_string(f[1:8], '|'), 'UTF8'))), 'hex')
       IS DISTINCT FROM f[9] THEN
        RETURN NULL;
    END IF;
    -- Signed by the application: well-formed from here on, but checked
    -- anyway so that a bad signer fails closed rather than with an error.
    IF f[8] !~ '^[0-9]{1,12}$' OR to_timestamp(f[8]::bigint) <= now()
       OR f[3] !~ '^([1-9][0-9]{0,17})?$' OR f[5] !~ '^([1-9][0-9]{0,17})?$'
       OR f[4] NOT IN ('', 'ADMIN', 'ORG_ADMIN', 'HR', 'DEPARTMENT_LEAD', 'EMPLOYEE')
       OR f[6] !~ '^((department|employee):[1-9][0-9]{0,17})?$'
       OR f[7] !~ '^([0-9a-f]{2}){0,255}$' THEN
        RETURN NULL;
    END IF;
    res.organization_id := NULLIF(f[3], '')::bigint;
    res.app_role := NULLIF(f[4], '');
    res.user_id := NULLIF(f[5], '')::bigint;
    res.scope := NULLIF(f[6], '');
    res.actor := NULLIF(convert_from(decode(f[7], 'hex'), 'UTF8'), '');
    RETURN res;
END $$;

CREATE FUNCTION app.org_id() RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$ SELECT (app.context()).organization_id $$;
CREATE FUNCTION app.app_role() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$ SELECT (app.context()).app_role $$;
CREATE FUNCTION app.user_id() RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$ SELECT (app.context()).user_id $$;
CREATE FUNCTION app.scope() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$ SELECT (app.context()).scope $$;
CREATE FUNCTION app.actor() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$ SELECT (app.context()).actor $$;

-- The all-organisations scope: a verified ADMIN context in a session that
-- logged in as the admin role, or the owner itself (definer functions,
-- migrations). SECURITY INVOKER, so current_user is the caller's; the
-- admin role must be the login (session_user), not a role set later.
CREATE FUNCTION app.all_organizations() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT current_user = 'staff_owner'
        OR (session_user = 'staff_admin' AND current_user = 'staff_admin'
            AND coalesce((app.context()).app_role = 'ADMIN', false))
$$;

-- Row-level security of every tenant table: the verified organisation, or
-- the all-organisations scope. Policies without FOR apply their USING
-- expression as WITH CHECK too.
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN
        SELECT p.tablename FROM pg_policies p
         WHERE p.schemaname = 'public' AND p.policyname = 'tenant_isolation' AND p.tablename <> 'organizations'
         ORDER BY 1
    LOOP
        EXECUTE format($p$ALTER POLICY tenant_isolation ON public.%I
            USING (organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()))$p$, t);
    END LOOP;
END $$;
ALTER POLICY tenant_isolation ON organizations
    USING (id = (SELECT app.org_id()) OR (SELECT app.all_organizations()));
ALTER POLICY tenant_read ON retention_policies
    USING (organization_id IS NULL OR organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()));
ALTER POLICY tenant_write ON retention_policies
    USING (organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()));
ALTER POLICY tenant_read ON audit_log
    USING (organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()));
-- Rows are appended only by app.audit() (the owner).
ALTER POLICY tenant_append ON audit_log
    WITH CHECK (current_user = 'staff_owner');

-- Audit rows, stamped from the verified context: its organisation (an
-- all-organisations context may name the organisation it acted on), its
-- user and its actor. Without a verified context the row has no
-- organisation and the actor names the database role that wrote it.
CREATE FUNCTION app.audit(p_organization_id bigint, p_action text, p_resource_type text, p_resource_id text,
                          p_outcome text, p_details jsonb) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    c   app.tenant_context := app.context();
    org bigint;
    id  bigint;
BEGIN
    IF c IS NULL THEN
        org := NULL;
    ELSIF session_user = 'staff_admin' AND c.app_role = 'ADMIN' THEN
        org := coalesce(p_organization_id, c.organization_id);
    ELSE
        org := c.organization_id;
        IF p_organization_id IS NOT NULL AND p_organization_id IS DISTINCT FROM org THEN
            RAISE EXCEPTION 'audit: organisation % is not the context''s', p_organization_id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    INSERT INTO public.audit_log (organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, details)
    VALUES (org, c.user_id,
            CASE WHEN c IS NULL THEN 'unverified:' || session_user
                 ELSE left(coalesce(c.actor, c.app_role, session_user), 255) END,
            p_action, p_resource_type, p_resource_id, coalesce(p_outcome, 'allowed'), coalesce(p_details, '{}'))
    RETURNING audit_log.id INTO id;
    RETURN id;
END $$;

-- The tenant-filtering read paths, now on the verified context.
DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('active_windows', 'id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds'),
        ('visited_sites', 'id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds'),
        ('screenshots', 'id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime'),
        ('user_sessions', 'id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, session_type, datetime'),
        ('device_events', 'id, organization_id, gateway_id, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction')
    ) AS v(t, cols) LOOP
        EXECUTE format($v$CREATE OR REPLACE VIEW monitoring_read.%1$I WITH (security_barrier) AS
            SELECT %2$s
            FROM monitoring.%1$I
            WHERE organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations())
            UNION ALL
            SELECT %3$s
            FROM monitoring_fallback.%1$I f
            WHERE (f.organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()))
              AND NOT EXISTS (SELECT 1 FROM monitoring.%1$I m
                              WHERE m.organization_id = f.organization_id AND m.id = f.id AND m.datetime = f.datetime)$v$,
            r.t, r.cols, 'f.' || replace(r.cols, ', ', ', f.'));
    END LOOP;
    IF monitoring.storage_kind() = 'timescaledb' THEN
        EXECUTE $v$CREATE OR REPLACE VIEW monitoring_read.activity_hourly WITH (security_barrier) AS
            SELECT bucket, organization_id, user_sid, computer_uid, window_events, active_seconds
            FROM monitoring.activity_hourly
            WHERE organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations())$v$;
    ELSE
        EXECUTE $v$CREATE OR REPLACE VIEW monitoring_read.activity_hourly WITH (security_barrier) AS
            SELECT date_trunc('hour', datetime) AS bucket, organization_id, user_sid, computer_uid,
                   count(*) AS window_events, coalesce(sum(duration_seconds), 0) AS active_seconds
            FROM monitoring_read.active_windows
            WHERE organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations())
            GROUP BY 1, 2, 3, 4$v$;
    END IF;
END $do$;

-- Time-series inserts only for the verified organisation. Native
-- partitions (and the always-native fallback): RLS on the parents, enabled
-- but not forced (the owner's views and definer functions read across
-- organisations). An INSERT ... ON CONFLICT DO NOTHING checks only the
-- INSERT policy. TimescaleDB hypertables: a row trigger.
CREATE FUNCTION monitoring.check_insert_organization() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF current_user <> 'staff_owner' AND NEW.organization_id IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "%"', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
DO $$
DECLARE
    s text;
    t text;
BEGIN
    FOREACH s IN ARRAY ARRAY['monitoring', 'monitoring_fallback'] LOOP
        FOR t IN SELECT table_name FROM monitoring.retention ORDER BY table_name LOOP
            IF s = 'monitoring' AND monitoring.storage_kind() = 'timescaledb' THEN
                EXECUTE format('CREATE TRIGGER check_insert_organization BEFORE INSERT ON monitoring.%I
                    FOR EACH ROW EXECUTE FUNCTION monitoring.check_insert_organization()', t);
            ELSE
                EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', s, t);
                EXECUTE format($p$CREATE POLICY tenant_insert ON %I.%I FOR INSERT
                    WITH CHECK (organization_id = (SELECT app.org_id()))$p$, s, t);
                -- INSERT ... RETURNING id (screenshots, for exact file
                -- clean-up) needs the new rows to pass a SELECT policy.
                EXECUTE format($p$CREATE POLICY tenant_returning ON %I.%I FOR SELECT
                    USING (organization_id = (SELECT app.org_id()))$p$, s, t);
            END IF;
        END LOOP;
    END LOOP;
END $$;

-- The re-sync (timeseries.Resync) works one organisation at a time, in
-- that organisation's verified context, through these functions; none of
-- them acts without a verified organisation.
--
-- Organisations with rows in the fallback tables (ids only).
CREATE FUNCTION monitoring.fallback_organizations() RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT organization_id FROM monitoring_fallback.active_windows
    UNION SELECT organization_id FROM monitoring_fallback.visited_sites
    UNION SELECT organization_id FROM monitoring_fallback.screenshots
    UNION SELECT organization_id FROM monitoring_fallback.user_sessions
    UNION SELECT organization_id FROM monitoring_fallback.device_events
$$;

-- How many rows the fallback tables hold (a count only).
CREATE FUNCTION monitoring.fallback_rows() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT (SELECT count(*) FROM monitoring_fallback.active_windows) + (SELECT count(*) FROM monitoring_fallback.visited_sites)
         + (SELECT count(*) FROM monitoring_fallback.screenshots) + (SELECT count(*) FROM monitoring_fallback.user_sessions)
         + (SELECT count(*) FROM monitoring_fallback.device_events)
$$;

-- The UTC days with fallback rows of p_table in the verified organisation.
CREATE FUNCTION monitoring.fallback_days(p_table text) RETURNS SETOF date
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    org bigint := app.org_id();
BEGIN
    IF p_table NOT IN (SELECT table_name FROM monitoring.retention) THEN
        RAISE EXCEPTION 'fallback_days: unknown table %', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF org IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format('SELECT DISTINCT (datetime AT TIME ZONE ''UTC'')::date FROM monitoring_fallback.%I
        WHERE organization_id = $1 ORDER BY 1', p_table) USING org;
END $$;

-- Up to least(p_limit, 5000) fallback rows of p_table, UTC day p_day, of
-- the verified organisation, in key order, as a JSON array of rows.
CREATE FUNCTION monitoring.fallback_chunk(p_table text, p_day date, p_limit integer) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    org bigint := app.org_id();
    out jsonb;
BEGIN
    IF p_table NOT IN (SELECT table_name FROM monitoring.retention) THEN
        RAISE EXCEPTION 'fallback_chunk: unknown table %', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF org IS NULL THEN
        RETURN '[]';
    END IF;
    EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.id, c.datetime), ''[]'') FROM (
        SELECT * FROM monitoring_fallback.%I
         WHERE organization_id = $1 AND datetime >= ($2::timestamp AT TIME ZONE ''UTC'')
           AND datetime < (($2 + 1)::timestamp AT TIME ZONE ''UTC'')
         ORDER BY id, datetime LIMIT $3) c', p_table)
        INTO out USING org, p_day, least(greatest(coalesce(p_limit, 0), 0), 5000);
    RETURN out;
END $$;

-- Count and order-independent checksum (every column but ingested_at) of
-- the rows of p_schema.p_table under the given keys (id, datetime) of the
-- verified organisation; at most 5000 keys.
CREATE FUNCTION monitoring.chunk_checksum(p_schema text, p_table text, p_ids uuid[], p_times timestamptz[])
RETURNS TABLE (n bigint, checksum text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    org bigint := app.org_id();
BEGIN
    IF p_schema NOT IN ('monitoring', 'monitoring_fallback')
       OR p_table NOT IN (SELECT table_name FROM monitoring.retention) THEN
        RAISE EXCEPTION 'chunk_checksum: unknown table %.%', p_schema, p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(p_ids) > 5000 THEN
        RAISE EXCEPTION 'chunk_checksum: % keys at once, at most 5000', cardinality(p_ids) USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF org IS NULL THEN
        n := 0;
        checksum := '0';
        RETURN NEXT;
        RETURN;
    END IF;
    PERFORM set_config('TimeZone', 'UTC', true);
    RETURN QUERY EXECUTE format('SELECT count(*), coalesce(sum((''x'' || left(md5((to_jsonb(t) - ''ingested_at'')::text), 15))::bit(60)::bigint), 0)::text
        FROM %I.%I t WHERE t.organization_id = $1
          AND (t.id, t.datetime) IN (SELECT * FROM unnest($2::uuid[], $3::timestamptz[]))', p_schema, p_table)
        USING org, p_ids, p_times;
END $$;

-- Delete the fallback rows of p_table under the given keys of the verified
-- organisation (at most 5000); the number deleted.
CREATE FUNCTION monitoring.fallback_delete(p_table text, p_ids uuid[], p_times timestamptz[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    org bigint := app.org_id();
    n bigint;
BEGIN
    IF p_table NOT IN (SELECT table_name FROM monitoring.retention) THEN
        RAISE EXCEPTION 'fallback_delete: unknown table %', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(p_ids) > 5000 THEN
        RAISE EXCEPTION 'fallback_delete: % keys at once, at most 5000', cardinality(p_ids) USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF org IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('DELETE FROM monitoring_fallback.%I WHERE organization_id = $1
        AND (id, datetime) IN (SELECT * FROM unnest($2::uuid[], $3::timestamptz[]))', p_table)
        USING org, p_ids, p_times;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Definer functions that read the organisation now read the verified one.
CREATE OR REPLACE FUNCTION monitoring.stored_event_seqs(p_schema text, p_table text, p_ids uuid[], p_times timestamptz[])
RETURNS TABLE (id uuid, datetime timestamptz, seq bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    org bigint := app.org_id();
BEGIN
    IF p_schema NOT IN ('monitoring', 'monitoring_fallback')
       OR p_table NOT IN (SELECT table_name FROM monitoring.retention) THEN
        RAISE EXCEPTION 'stored_event_seqs: unknown table %.%', p_schema, p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF org IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT s.id, s.datetime, s.seq FROM %I.%I s JOIN unnest($1, $2) AS k(id, datetime)
           ON s.id = k.id AND s.datetime = k.datetime WHERE s.organization_id = $3', p_schema, p_table)
        USING p_ids, p_times, org;
END $$;

CREATE OR REPLACE FUNCTION gateway_commands_due(p_gateways uuid[]) RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    org bigint := app.org_id();
BEGIN
    RETURN QUERY
        SELECT DISTINCT c.gateway_id FROM public.gateway_commands c
         WHERE c.gateway_id = ANY(p_gateways) AND c.status = 'pending'
           AND c.next_attempt_at <= now() AND c.expires_at > now()
           AND c.organization_id = org; -- no verified organisation: nothing
END $$;

-- The cross-organisation definer functions see every organisation because
-- they run as the owner (app.all_organizations()); they no longer set
-- app.current_role, which nothing reads any more.
CREATE OR REPLACE FUNCTION gateway_by_api_key_hash(p_hash bytea)
RETURNS TABLE (gateway_id uuid, organization_id bigint, status text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
#variable_conflict use_column
DECLARE
    v_id     uuid;
    v_org    bigint;
    v_status text;
    v_stale  boolean;
    v_prefix text;
    v_cmd    uuid;
    v_at     timestamptz;
BEGIN
    SELECT g.id, g.organization_id, g.status, coalesce(g.pending_key_expires_at <= now(), false)
      INTO v_id, v_org, v_status, v_stale
      FROM public.gateway_instances g
     WHERE g.api_key_hash = p_hash AND g.revoked_at IS NULL;
    IF v_id IS NOT NULL THEN
        IF v_stale THEN
            UPDATE public.gateway_instances g
               SET pending_key_hash = NULL, pending_key_prefix = NULL, pending_key_expires_at = NULL,
                   pending_command_id = NULL, updated_at = now()
             WHERE g.id = v_id AND g.pending_key_expires_at <= now();
        END IF;
    ELSE
        UPDATE public.gateway_instances g
           SET api_key_hash = g.pending_key_hash, api_key_prefix = g.pending_key_prefix,
               key_rotated_at = now(), key_command_id = g.pending_command_id,
               pending_key_hash = NULL, pending_key_prefix = NULL, pending_key_expires_at = NULL,
               pending_command_id = NULL, updated_at = now()
         WHERE g.pending_key_hash = p_hash AND g.revoked_at IS NULL
        RETURNING g.id, g.organization_id, g.status, g.api_key_prefix, g.key_command_id, g.key_rotated_at
             INTO v_id, v_org, v_status, v_prefix, v_cmd, v_at;
        IF v_id IS NOT NULL AND v_cmd IS NOT NULL THEN
            UPDATE public.gateway_commands c
               SET status = 'completed', completed_at = now(), ack_at = now(),
                   received_at = coalesce(c.received_at, now()), ack_deadline = NULL, error = NULL,
                   result = jsonb_build_object('key_prefix', v_prefix, 'rotated_at', v_at)
             WHERE c.id = v_cmd AND c.gateway_id = v_id AND c.type = 'rotate_api_key'
               AND c.status IN ('pending', 'delivered');
        ELSIF v_id IS NULL THEN
            SELECT g.id, g.organization_id, g.status INTO v_id, v_org, v_status
              FROM public.gateway_instances g
             WHERE g.api_key_hash = p_hash AND g.revoked_at IS NULL;
        END IF;
    END IF;
    IF v_id IS NOT NULL THEN
        gateway_id := v_id;
        organization_id := v_org;
        status := v_status;
        RETURN NEXT;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION gateway_provision(p_org bigint, p_serial text, p_token_hash bytea, p_key_hash bytea, p_key_prefix text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    gw uuid;
BEGIN
    UPDATE public.provisioning_tokens t
       SET used_at = now()
      FROM public.gateway_instances g
     WHERE t.token_hash = p_token_hash
       AND t.organization_id = p_org
       AND t.used_at IS NULL
       AND t.expires_at > now()
       AND g.id = t.gateway_id
       AND g.serial = p_serial
       AND g.revoked_at IS NULL
    RETURNING t.gateway_id INTO gw;
    IF gw IS NOT NULL THEN
        UPDATE public.gateway_instances
           SET api_key_hash = p_key_hash, api_key_prefix = p_key_prefix, status = 'offline', updated_at = now()
         WHERE id = gw;
    END IF;
    RETURN gw;
END $$;

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

CREATE OR REPLACE FUNCTION gateways_mark_offline_after(p_silence interval) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    silence interval := greatest(coalesce(p_silence, interval '0'), interval '30 seconds');
BEGIN
    RETURN QUERY
        UPDATE public.gateway_instances SET status = 'offline', updated_at = now()
         WHERE status = 'online' AND (last_seen_at IS NULL OR last_seen_at < now() - silence)
        RETURNING gateway_instances.id;
END $$;

CREATE OR REPLACE FUNCTION policy_distributions_active() RETURNS TABLE (id uuid, organization_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT d.id, d.organization_id FROM public.policy_distributions d WHERE d.stage IN ('canary', 'full')
$$;

-- The caller-timed variants of 00006/00007, replaced in 00012 and owner-only
-- since, go: with ADMIN no longer forgeable they could not see across
-- organisations anyway.
DROP FUNCTION gateway_commands_sweep(timestamptz, interval);
DROP FUNCTION gateways_mark_offline(timestamptz);

-- Privileges.
REVOKE ALL ON FUNCTION app.context(), app.org_id(), app.app_role(), app.user_id(), app.scope(), app.actor(),
    app.all_organizations(), app.audit(bigint, text, text, text, text, jsonb),
    monitoring.check_insert_organization(), monitoring.fallback_organizations(), monitoring.fallback_rows(), monitoring.fallback_days(text),
    monitoring.fallback_chunk(text, date, integer), monitoring.chunk_checksum(text, text, uuid[], timestamptz[]),
    monitoring.fallback_delete(text, uuid[], timestamptz[]) FROM PUBLIC;
-- Trigger functions fire whatever their EXECUTE privilege; nobody needs
-- to call them.
REVOKE EXECUTE ON FUNCTION audit_log_append_only(), gateway_commands_notify(), gateway_instances_revoked_notify(),
    gateway_instances_void_pending() FROM PUBLIC;
GRANT USAGE ON SCHEMA app TO staff_dashboard, staff_ingest, staff_admin;
GRANT EXECUTE ON FUNCTION app.context(), app.org_id(), app.app_role(), app.user_id(), app.scope(), app.actor(),
    app.all_organizations(), app.audit(bigint, text, text, text, text, jsonb) TO staff_dashboard, staff_ingest, staff_admin;

-- The ingest role: no reads of the time series, no direct reads or deletes
-- of the fallback (the re-sync's functions above instead), no audit rows
-- but through app.audit().
REVOKE SELECT ON monitoring.active_windows, monitoring.visited_sites, monitoring.screenshots,
    monitoring.user_sessions, monitoring.device_events FROM staff_ingest;
REVOKE SELECT, DELETE ON monitoring_fallback.active_windows, monitoring_fallback.visited_sites,
    monitoring_fallback.screenshots, monitoring_fallback.user_sessions, monitoring_fallback.device_events FROM staff_ingest;
REVOKE SELECT, INSERT ON audit_log FROM staff_ingest;
REVOKE INSERT ON audit_log FROM staff_dashboard;
-- RETURNING id of the screenshot inserts: the id column only. Not on a
-- TimescaleDB hypertable, whose column grants fail on its compressed
-- hypertable (issue 12; 00017 replaces RETURNING on both engines).
GRANT SELECT (id) ON monitoring_fallback.screenshots TO staff_ingest;
DO $$
BEGIN
    IF monitoring.storage_kind() = 'partitions' THEN
        GRANT SELECT (id) ON monitoring.screenshots TO staff_ingest;
    END IF;
END $$;
GRANT EXECUTE ON FUNCTION monitoring.fallback_organizations(), monitoring.fallback_rows(), monitoring.fallback_days(text),
    monitoring.fallback_chunk(text, date, integer), monitoring.chunk_checksum(text, text, uuid[], timestamptz[]),
    monitoring.fallback_delete(text, uuid[], timestamptz[]) TO staff_ingest;

-- The admin role (staffctl and authenticated administrator requests): the
-- dashboard role's relational and read-path privileges, nothing on the
-- time-series tables, no definer function but the context's.
GRANT USAGE ON SCHEMA public, monitoring_read TO staff_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    organizations, departments, employees, employee_identities, users, policies,
    gateway_instances, provisioning_tokens, gateway_status_snapshots, agent_instances,
    gateway_commands, policy_versions, policy_changes, devices, device_commands,
    retention_policies
TO staff_admin;
GRANT SELECT, INSERT, UPDATE ON policy_distributions, policy_distribution_targets TO staff_admin;
GRANT SELECT ON audit_log, device_adapters, gateway_ingest_stats, gateway_drop_reports TO staff_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA monitoring_read TO staff_admin;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
GRANT EXECUTE ON FUNCTION audit_log_append_only(), gateway_commands_notify(), gateway_instances_revoked_notify(),
    gateway_instances_void_pending() TO PUBLIC;
REVOKE SELECT (id) ON monitoring_fallback.screenshots FROM staff_ingest;
DO $$
BEGIN
    IF monitoring.storage_kind() = 'partitions' THEN
        REVOKE SELECT (id) ON monitoring.screenshots FROM staff_ingest;
    END IF;
END $$;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM staff_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA monitoring_read FROM staff_admin;
REVOKE ALL ON SCHEMA public, monitoring_read FROM staff_admin;
GRANT SELECT ON monitoring.active_windows, monitoring.visited_sites, monitoring.screenshots,
    monitoring.user_sessions, monitoring.device_events TO staff_ingest;
GRANT SELECT, DELETE ON monitoring_fallback.active_windows, monitoring_fallback.visited_sites,
    monitoring_fallback.screenshots, monitoring_fallback.user_sessions, monitoring_fallback.device_events TO staff_ingest;
GRANT SELECT, INSERT ON audit_log TO staff_dashboard, staff_ingest;

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

CREATE OR REPLACE FUNCTION policy_distributions_active() RETURNS TABLE (id uuid, organization_id bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    RETURN QUERY SELECT d.id, d.organization_id FROM public.policy_distributions d WHERE d.stage IN ('canary', 'full');
    PERFORM set_config('app.current_role', saved, true);
END $$;

CREATE OR REPLACE FUNCTION gateways_mark_offline_after(p_silence interval) RETURNS SETOF uuid
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

CREATE OR REPLACE FUNCTION gateway_commands_sweep(p_backoff interval)
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

CREATE OR REPLACE FUNCTION gateway_provision(p_org bigint, p_serial text, p_token_hash bytea, p_key_hash bytea, p_key_prefix text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
    gw uuid;
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    UPDATE public.provisioning_tokens t
       SET used_at = now()
      FROM public.gateway_instances g
     WHERE t.token_hash = p_token_hash
       AND t.organization_id = p_org
       AND t.used_at IS NULL
       AND t.expires_at > now()
       AND g.id = t.gateway_id
       AND g.serial = p_serial
       AND g.revoked_at IS NULL
    RETURNING t.gateway_id INTO gw;
    IF gw IS NOT NULL THEN
        UPDATE public.gateway_instances
           SET api_key_hash = p_key_hash, api_key_prefix = p_key_prefix, status = 'offline', updated_at = now()
         WHERE id = gw;
    END IF;
    PERFORM set_config('app.current_role', saved, true);
    RETURN gw;
END $$;

CREATE OR REPLACE FUNCTION gateway_by_api_key_hash(p_hash bytea)
RETURNS TABLE (gateway_id uuid, organization_id bigint, status text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
#variable_conflict use_column
DECLARE
    saved    text := coalesce(current_setting('app.current_role', true), '');
    v_id     uuid;
    v_org    bigint;
    v_status text;
    v_stale  boolean;
    v_prefix text;
    v_cmd    uuid;
    v_at     timestamptz;
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    SELECT g.id, g.organization_id, g.status, coalesce(g.pending_key_expires_at <= now(), false)
      INTO v_id, v_org, v_status, v_stale
      FROM public.gateway_instances g
     WHERE g.api_key_hash = p_hash AND g.revoked_at IS NULL;
    IF v_id IS NOT NULL THEN
        IF v_stale THEN
            UPDATE public.gateway_instances g
               SET pending_key_hash = NULL, pending_key_prefix = NULL, pending_key_expires_at = NULL,
                   pending_command_id = NULL, updated_at = now()
             WHERE g.id = v_id AND g.pending_key_expires_at <= now();
        END IF;
    ELSE
        UPDATE public.gateway_instances g
           SET api_key_hash = g.pending_key_hash, api_key_prefix = g.pending_key_prefix,
               key_rotated_at = now(), key_command_id = g.pending_command_id,
               pending_key_hash = NULL, pending_key_prefix = NULL, pending_key_expires_at = NULL,
               pending_command_id = NULL, updated_at = now()
         WHERE g.pending_key_hash = p_hash AND g.revoked_at IS NULL
        RETURNING g.id, g.organization_id, g.status, g.api_key_prefix, g.key_command_id, g.key_rotated_at
             INTO v_id, v_org, v_status, v_prefix, v_cmd, v_at;
        IF v_id IS NOT NULL AND v_cmd IS NOT NULL THEN
            UPDATE public.gateway_commands c
               SET status = 'completed', completed_at = now(), ack_at = now(),
                   received_at = coalesce(c.received_at, now()), ack_deadline = NULL, error = NULL,
                   result = jsonb_build_object('key_prefix', v_prefix, 'rotated_at', v_at)
             WHERE c.id = v_cmd AND c.gateway_id = v_id AND c.type = 'rotate_api_key'
               AND c.status IN ('pending', 'delivered');
        ELSIF v_id IS NULL THEN
            SELECT g.id, g.organization_id, g.status INTO v_id, v_org, v_status
              FROM public.gateway_instances g
             WHERE g.api_key_hash = p_hash AND g.revoked_at IS NULL;
        END IF;
    END IF;
    PERFORM set_config('app.current_role', saved, true);
    IF v_id IS NOT NULL THEN
        gateway_id := v_id;
        organization_id := v_org;
        status := v_status;
        RETURN NEXT;
    END IF;
END $$;

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
           AND c.organization_id = org;
    PERFORM set_config('app.current_role', saved, true);
END $$;

CREATE OR REPLACE FUNCTION monitoring.stored_event_seqs(p_schema text, p_table text, p_ids uuid[], p_times timestamptz[])
RETURNS TABLE (id uuid, datetime timestamptz, seq bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    org bigint := NULLIF(current_setting('app.current_organization_id', true), '')::bigint;
BEGIN
    IF p_schema NOT IN ('monitoring', 'monitoring_fallback')
       OR p_table NOT IN (SELECT table_name FROM monitoring.retention) THEN
        RAISE EXCEPTION 'stored_event_seqs: unknown table %.%', p_schema, p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF org IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT s.id, s.datetime, s.seq FROM %I.%I s JOIN unnest($1, $2) AS k(id, datetime)
           ON s.id = k.id AND s.datetime = k.datetime WHERE s.organization_id = $3', p_schema, p_table)
        USING p_ids, p_times, org;
END $$;

DROP FUNCTION monitoring.fallback_delete(text, uuid[], timestamptz[]);
DROP FUNCTION monitoring.chunk_checksum(text, text, uuid[], timestamptz[]);
DROP FUNCTION monitoring.fallback_chunk(text, date, integer);
DROP FUNCTION monitoring.fallback_days(text);
DROP FUNCTION monitoring.fallback_rows();
DROP FUNCTION monitoring.fallback_organizations();

DO $$
DECLARE
    s text;
    t text;
BEGIN
    FOREACH s IN ARRAY ARRAY['monitoring', 'monitoring_fallback'] LOOP
        FOR t IN SELECT table_name FROM monitoring.retention ORDER BY table_name LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS check_insert_organization ON %I.%I', s, t);
            EXECUTE format('DROP POLICY IF EXISTS tenant_insert ON %I.%I', s, t);
            EXECUTE format('DROP POLICY IF EXISTS tenant_returning ON %I.%I', s, t);
            -- Only where Up enabled it: TimescaleDB refuses DISABLE ROW LEVEL
            -- SECURITY on a hypertable with compression, which has the
            -- trigger instead (this Down never ran on TimescaleDB before
            -- issue 12, which corrected it).
            IF (SELECT relrowsecurity FROM pg_class WHERE oid = format('%I.%I', s, t)::regclass) THEN
                EXECUTE format('ALTER TABLE %I.%I DISABLE ROW LEVEL SECURITY', s, t);
            END IF;
        END LOOP;
    END LOOP;
END $$;
DROP FUNCTION monitoring.check_insert_organization();

DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('active_windows', 'id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds'),
        ('visited_sites', 'id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds'),
        ('screenshots', 'id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime'),
        ('user_sessions', 'id, organization_id, gateway_id, agent_uid, computer_uid, user_sid, session_type, datetime'),
        ('device_events', 'id, organization_id, gateway_id, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction')
    ) AS v(t, cols) LOOP
        EXECUTE format($v$CREATE OR REPLACE VIEW monitoring_read.%1$I WITH (security_barrier) AS
            SELECT %2$s
            FROM monitoring.%1$I
            WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
               OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
            UNION ALL
            SELECT %3$s
            FROM monitoring_fallback.%1$I f
            WHERE (f.organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
                   OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN')
              AND NOT EXISTS (SELECT 1 FROM monitoring.%1$I m WHERE m.id = f.id AND m.datetime = f.datetime)$v$,
            r.t, r.cols, 'f.' || replace(r.cols, ', ', ', f.'));
    END LOOP;
    IF monitoring.storage_kind() = 'timescaledb' THEN
        EXECUTE $v$CREATE OR REPLACE VIEW monitoring_read.activity_hourly WITH (security_barrier) AS
            SELECT bucket, organization_id, user_sid, computer_uid, window_events, active_seconds
            FROM monitoring.activity_hourly
            WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
               OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'$v$;
    ELSE
        EXECUTE $v$CREATE OR REPLACE VIEW monitoring_read.activity_hourly WITH (security_barrier) AS
            SELECT date_trunc('hour', datetime) AS bucket, organization_id, user_sid, computer_uid,
                   count(*) AS window_events, coalesce(sum(duration_seconds), 0) AS active_seconds
            FROM monitoring_read.active_windows
            WHERE organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
               OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
            GROUP BY 1, 2, 3, 4$v$;
    END IF;
END $do$;

DO $$
DECLARE
    t text;
BEGIN
    FOR t IN
        SELECT p.tablename FROM pg_policies p
         WHERE p.schemaname = 'public' AND p.policyname = 'tenant_isolation' AND p.tablename <> 'organizations'
         ORDER BY 1
    LOOP
        EXECUTE format($p$ALTER POLICY tenant_isolation ON public.%I
            USING (organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
                   OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN')$p$, t);
    END LOOP;
END $$;
ALTER POLICY tenant_isolation ON organizations
    USING (id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
           OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN');
ALTER POLICY tenant_read ON retention_policies
    USING (organization_id IS NULL
           OR organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
           OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN');
ALTER POLICY tenant_write ON retention_policies
    USING (organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
           OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN');
ALTER POLICY tenant_read ON audit_log
    USING (organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
           OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN');
ALTER POLICY tenant_append ON audit_log
    WITH CHECK (organization_id IS NULL
                OR organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
                OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN');

DROP SCHEMA app CASCADE;
-- +goose StatementEnd
