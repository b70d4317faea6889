-- Generated: the migrated schema as pg_dump sees it, for sqlc (sqlc.yaml). Not run.
-- Rewrite with: go test ./internal/cloud/postgres/ -run TestSchemaDumpCurrent -update

CREATE SCHEMA app;

CREATE SCHEMA monitoring;

CREATE SCHEMA monitoring_fallback;

CREATE SCHEMA monitoring_read;

CREATE SCHEMA public;

CREATE TYPE app.tenant_context AS (
	organization_id bigint,
	app_role text,
	user_id bigint,
	scope text,
	actor text
);

CREATE FUNCTION app.actor() RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
    AS $$ SELECT (app.context()).actor $$;

CREATE FUNCTION app.all_organizations() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT current_user = 'staff_owner'
        OR (session_user = 'staff_admin' AND current_user = 'staff_admin'
            AND coalesce((app.context()).app_role = 'ADMIN', false))
$$;

CREATE FUNCTION app.app_role() RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
    AS $$ SELECT (app.context()).app_role $$;

CREATE FUNCTION app.audit(p_organization_id bigint, p_action text, p_resource_type text, p_resource_id text, p_outcome text, p_details jsonb) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
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

CREATE FUNCTION app.bump_version() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    NEW.row_version := OLD.row_version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE FUNCTION app.context() RETURNS app.tenant_context
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
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
END $_$;

CREATE FUNCTION app.dashboard_events_bounds(OUT first_id bigint, OUT last_id bigint) RETURNS record
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    SELECT min(e.id), max(e.id) INTO first_id, last_id FROM public.dashboard_events e;
    IF first_id IS NULL THEN
        SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END INTO first_id
          FROM public.dashboard_events_id_seq s;
        last_id := first_id - 1;
    END IF;
END $$;

CREATE FUNCTION app.dashboard_events_prune() RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    n integer;
BEGIN
    DELETE FROM public.dashboard_events e
     WHERE e.id IN (SELECT o.id FROM public.dashboard_events o
                     WHERE o.created_at < now() - interval '24 hours'
                     ORDER BY o.id LIMIT 10000 FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

CREATE FUNCTION app.dashboard_events_publish(max_rows integer DEFAULT 10000) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    cutoff bigint;
    moved  integer;
    dists  uuid[];
    last   bigint;
BEGIN
    IF max_rows IS NULL OR max_rows < 1 OR max_rows > 100000 THEN
        RAISE EXCEPTION 'dashboard_events_publish: max_rows must be 1 … 100000, not %', max_rows
            USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.dashboard_events_staged) THEN
        RETURN 0;
    END IF;
    -- One publisher at a time: ids are handed out in this transaction only.
    PERFORM pg_advisory_xact_lock(7428024);
    SELECT max(s.seq) INTO cutoff
      FROM (SELECT st.seq FROM public.dashboard_events_staged st ORDER BY st.seq LIMIT max_rows) s;
    IF cutoff IS NULL THEN
        RETURN 0; -- another publisher took them
    END IF;
    -- Move them in staging order, and collect the distributions they touch
    -- (a command's through its target), in one statement: one snapshot.
    WITH gone AS (
        DELETE FROM public.dashboard_events_staged st WHERE st.seq <= cutoff RETURNING st.*
    ), ins AS (
        INSERT INTO public.dashboard_events (organization_id, kind, subject, data, created_at)
        SELECT g.organization_id, g.kind, g.subject, g.data, g.created_at FROM gone g
         WHERE g.kind IS NOT NULL ORDER BY g.seq
        RETURNING dashboard_events.id
    )
    SELECT (SELECT count(*) FROM gone),
           (SELECT array_agg(DISTINCT u.d) FROM (
                SELECT g.distribution_id AS d FROM gone g WHERE g.distribution_id IS NOT NULL
                UNION
                SELECT t.distribution_id FROM gone g JOIN public.policy_distribution_targets t ON t.command_id = g.command_id
                 WHERE g.command_id IS NOT NULL) u)
      INTO moved, dists;
    -- Each touched distribution's progress once (policy.Progress's counts:
    -- target.status in internal/cloud/policy), when it differs from its last
    -- row.
    IF dists IS NOT NULL THEN
        INSERT INTO public.dashboard_events (organization_id, kind, subject, data)
        SELECT c.organization_id, 'policy_distribution.progress', c.id::text, c.data
          FROM (SELECT pd.id, pd.organization_id,
                       jsonb_build_object('distribution_id', pd.id, 'policy_id', pd.policy_id, 'stage', pd.stage,
                           'total', count(t.gateway_id),
                           'waiting', count(*) FILTER (WHERE t.gateway_id IS NOT NULL AND t.command_id IS NULL),
                           'pending', count(*) FILTER (WHERE c.status = 'pending'),
                           'delivered', count(*) FILTER (WHERE c.status = 'delivered'),
                           'applied', count(*) FILTER (WHERE c.status = 'completed'),
                           'failed', count(*) FILTER (WHERE t.command_id IS NOT NULL
                                   AND (c.status IS NULL OR c.status NOT IN ('pending', 'delivered', 'completed')))) AS data
                  FROM public.policy_distributions pd
                  LEFT JOIN public.policy_distribution_targets t ON t.distribution_id = pd.id
                  LEFT JOIN public.gateway_commands c ON c.id = t.command_id
                 WHERE pd.id = ANY (dists)
                 GROUP BY pd.id) c
          LEFT JOIN LATERAL (SELECT e.data FROM public.dashboard_events e
                              WHERE e.subject = c.id::text AND e.kind = 'policy_distribution.progress'
                              ORDER BY e.id DESC LIMIT 1) l ON true
         WHERE l.data IS DISTINCT FROM c.data
         ORDER BY c.id;
    END IF;
    SELECT max(e.id) INTO last FROM public.dashboard_events e;
    IF last IS NOT NULL THEN
        PERFORM pg_notify('dashboard_events', last::text);
    END IF;
    RETURN moved;
END $$;

CREATE FUNCTION app.dashboard_events_stage_commands() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- A new command joins a distribution through its target, which
        -- stages the distribution itself.
        INSERT INTO public.dashboard_events_staged (organization_id, kind, subject, data)
        SELECT n.organization_id, 'command.status', n.id::text,
               jsonb_build_object('command_id', n.id, 'gateway_id', n.gateway_id, 'type', n.type,
                                  'status', n.status, 'previous', NULL)
          FROM new_rows n;
    ELSE
        INSERT INTO public.dashboard_events_staged (organization_id, kind, subject, data, command_id)
        SELECT n.organization_id, 'command.status', n.id::text,
               jsonb_build_object('command_id', n.id, 'gateway_id', n.gateway_id, 'type', n.type,
                                  'status', n.status, 'previous', o.status), n.id
          FROM new_rows n JOIN old_rows o ON o.id = n.id
         WHERE o.status IS DISTINCT FROM n.status;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION app.dashboard_events_stage_distribution() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    INSERT INTO public.dashboard_events_staged (organization_id, subject, distribution_id)
    VALUES (NEW.organization_id, NEW.id::text, NEW.id);
    RETURN NULL;
END $$;

CREATE FUNCTION app.dashboard_events_stage_gateway() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    prev text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        prev := OLD.status;
    END IF;
    INSERT INTO public.dashboard_events_staged (organization_id, kind, subject, data)
    VALUES (NEW.organization_id, 'gateway.status', NEW.id::text,
            jsonb_build_object('gateway_id', NEW.id, 'status', NEW.status, 'previous', prev));
    RETURN NULL;
END $$;

CREATE FUNCTION app.dashboard_events_stage_targets() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO public.dashboard_events_staged (organization_id, subject, distribution_id)
        SELECT DISTINCT n.organization_id, n.distribution_id::text, n.distribution_id FROM new_rows n;
    ELSE
        INSERT INTO public.dashboard_events_staged (organization_id, subject, distribution_id)
        SELECT DISTINCT n.organization_id, n.distribution_id::text, n.distribution_id
          FROM new_rows n JOIN old_rows o ON o.distribution_id = n.distribution_id AND o.gateway_id = n.gateway_id
         WHERE o.command_id IS DISTINCT FROM n.command_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION app.login_lookup(p_email text) RETURNS TABLE(user_id bigint, organization_id bigint, role text, department_id bigint, employee_id bigint, email text, password_hash text, is_active boolean, retry_after_ms bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT u.id, u.organization_id, u.role, u.department_id, u.employee_id, u.email, u.password_hash, u.is_active,
           CASE WHEN l.locked_until > now()
                THEN ceil(extract(epoch FROM l.locked_until - now()) * 1000)::bigint ELSE 0 END
      FROM public.users u LEFT JOIN public.auth_lockouts l ON l.user_id = u.id
     WHERE u.email = lower(p_email) AND length(p_email) <= 255
$$;

CREATE FUNCTION app.login_result(p_email text, p_user_id bigint, p_outcome text, p_action text, p_new_hash text, p_refresh_hash bytea, p_refresh_idle interval, p_refresh_max interval, p_max_failures integer, p_lock_base interval, p_lock_max interval, p_client inet, p_user_agent text) RETURNS TABLE(outcome text, retry_after_ms bigint, session_id uuid, refresh_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    u       public.users;
    l       public.auth_lockouts;
    actor   text := left(coalesce(nullif(lower(btrim(p_email)), ''), 'anonymous'), 255);
    details jsonb := jsonb_build_object('client', host(p_client));
    lock_for interval;
    sid     uuid;
    exp     timestamptz;
BEGIN
    IF p_outcome IS NULL OR p_outcome NOT IN ('success', 'wrong_password', 'inactive', 'locked') THEN
        RAISE EXCEPTION 'login_result: unknown outcome %', p_outcome USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_action IS NULL OR p_action NOT IN ('login', 'password_change') THEN
        RAISE EXCEPTION 'login_result: unknown action %', p_action USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_max_failures IS NULL OR p_max_failures NOT BETWEEN 1 AND 100
       OR p_lock_base IS NULL OR p_lock_base < interval '1 second' OR p_lock_base > interval '1 day'
       OR p_lock_max IS NULL OR p_lock_max < p_lock_base OR p_lock_max > interval '7 days'
       OR p_refresh_idle IS NULL OR p_refresh_idle < interval '1 minute' OR p_refresh_idle > interval '90 days'
       OR p_refresh_max IS NULL OR p_refresh_max < p_refresh_idle OR p_refresh_max > interval '365 days' THEN
        RAISE EXCEPTION 'login_result: limits out of bounds' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_user_id IS NULL THEN
        INSERT INTO public.audit_log (organization_id, actor, action, resource_type, outcome, details)
        VALUES (NULL, actor, 'auth.' || p_action, 'user', 'denied', details || '{"reason": "unknown_email"}');
        RETURN QUERY SELECT 'failed'::text, 0::bigint, NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT * INTO u FROM public.users WHERE id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'login_result: no user %', p_user_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    actor := u.email;
    INSERT INTO public.auth_lockouts (user_id, organization_id) VALUES (u.id, u.organization_id)
        ON CONFLICT (user_id) DO NOTHING;
    SELECT * INTO l FROM public.auth_lockouts WHERE user_id = u.id FOR UPDATE;

    IF l.locked_until > now() THEN
        INSERT INTO public.audit_log (organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, details)
        VALUES (u.organization_id, u.id, actor, 'auth.' || p_action, 'user', u.id::text, 'denied',
                details || '{"reason": "locked"}');
        RETURN QUERY SELECT 'locked'::text, ceil(extract(epoch FROM l.locked_until - now()) * 1000)::bigint,
                            NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    IF p_outcome = 'locked' THEN
        -- The lock the caller saw has expired since: nothing to refuse for.
        RETURN QUERY SELECT 'failed'::text, 0::bigint, NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;

    IF p_outcome = 'success' AND u.is_active THEN
        UPDATE public.auth_lockouts SET failed_logins = 0, lockouts = 0, locked_until = NULL WHERE user_id = u.id;
        UPDATE public.users SET last_login_at = now(),
               password_hash = coalesce(nullif(p_new_hash, ''), password_hash),
               updated_at = CASE WHEN nullif(p_new_hash, '') IS NULL THEN updated_at ELSE now() END
         WHERE id = u.id;
        IF p_action = 'login' THEN
            IF p_refresh_hash IS NULL OR length(p_refresh_hash) <> 32 THEN
                RAISE EXCEPTION 'login_result: a refresh token hash is 32 bytes' USING ERRCODE = 'invalid_parameter_value';
            END IF;
            -- The user's sessions past their end, and those revoked over a
            -- day ago, go (their tokens with them): the tables stay bounded
            -- per user without a sweep.
            DELETE FROM public.auth_sessions
             WHERE user_id = u.id AND (expires_at <= now() OR revoked_at < now() - interval '1 day');
            INSERT INTO public.auth_sessions (user_id, organization_id, expires_at, client_address, user_agent)
            VALUES (u.id, u.organization_id, now() + p_refresh_max, p_client, left(p_user_agent, 512))
            RETURNING id INTO sid;
            exp := least(now() + p_refresh_idle, now() + p_refresh_max);
            INSERT INTO public.auth_refresh_tokens (token_hash, session_id, organization_id, expires_at)
            VALUES (p_refresh_hash, sid, u.organization_id, exp);
            INSERT INTO public.audit_log (organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, details)
            VALUES (u.organization_id, u.id, actor, 'auth.login', 'session', sid::text, 'allowed',
                    details || jsonb_build_object('rehashed', nullif(p_new_hash, '') IS NOT NULL));
        END IF;
        RETURN QUERY SELECT 'ok'::text, 0::bigint, sid, exp;
        RETURN;
    END IF;

    -- A failure: a wrong password, or a disabled account (counted alike,
    -- so that the lock does not tell them apart).
    l.failed_logins := l.failed_logins + 1;
    INSERT INTO public.audit_log (organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, details)
    VALUES (u.organization_id, u.id, actor, 'auth.' || p_action, 'user', u.id::text, 'denied',
            details || jsonb_build_object('reason', CASE WHEN p_outcome = 'success' THEN 'inactive' ELSE p_outcome END,
                                          'failures', l.failed_logins));
    IF l.failed_logins >= p_max_failures THEN
        l.lockouts := l.lockouts + 1;
        lock_for := least(p_lock_base * power(2, least(l.lockouts - 1, 30)), p_lock_max);
        UPDATE public.auth_lockouts SET failed_logins = 0, lockouts = l.lockouts, locked_until = now() + lock_for,
               last_failed_at = now()
         WHERE user_id = u.id;
        INSERT INTO public.audit_log (organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, details)
        VALUES (u.organization_id, u.id, actor, 'auth.lockout', 'user', u.id::text, 'denied',
                details || jsonb_build_object('lockouts', l.lockouts, 'locked_seconds', extract(epoch FROM lock_for)));
        RETURN QUERY SELECT 'locked'::text, ceil(extract(epoch FROM lock_for) * 1000)::bigint, NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    UPDATE public.auth_lockouts SET failed_logins = l.failed_logins, last_failed_at = now() WHERE user_id = u.id;
    RETURN QUERY SELECT 'failed'::text, 0::bigint, NULL::uuid, NULL::timestamptz;
END $$;

CREATE FUNCTION app.org_id() RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
    AS $$ SELECT (app.context()).organization_id $$;

CREATE FUNCTION app.organizations_check_time_zone() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    IF NEW.time_zone IS DISTINCT FROM 'UTC'
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = NEW.time_zone) THEN
        RAISE EXCEPTION 'time_zone: unknown IANA time zone %', NEW.time_zone
            USING ERRCODE = 'check_violation', COLUMN = 'time_zone', TABLE = 'organizations',
                  CONSTRAINT = 'organizations_time_zone_check';
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION app.organizations_time_zone_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
    SELECT DISTINCT d.organization_id, d.user_sid, h
    FROM monitoring.activity_days d,
         generate_series(date_trunc('hour', d.day::timestamp AT TIME ZONE OLD.time_zone, 'UTC'),
                         (d.day + 1)::timestamp AT TIME ZONE OLD.time_zone - interval '1 microsecond', interval '1 hour') h
    WHERE d.organization_id = NEW.id
    ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION app.password_change(p_user_id bigint, p_session_id uuid, p_new_hash text, p_refresh_hash bytea, p_refresh_idle interval, p_refresh_max interval, p_client inet, p_user_agent text) RETURNS TABLE(outcome text, session_id uuid, refresh_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
DECLARE
    u   public.users;
    n   integer;
    sid uuid;
    exp timestamptz;
BEGIN
    IF p_new_hash IS NULL OR p_new_hash NOT LIKE '$argon2id$%' OR length(p_new_hash) > 512 THEN
        RAISE EXCEPTION 'password_change: not an argon2id hash' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_refresh_hash IS NULL OR length(p_refresh_hash) <> 32 THEN
        RAISE EXCEPTION 'password_change: a refresh token hash is 32 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_refresh_idle IS NULL OR p_refresh_idle < interval '1 minute' OR p_refresh_idle > interval '90 days'
       OR p_refresh_max IS NULL OR p_refresh_max < p_refresh_idle OR p_refresh_max > interval '365 days' THEN
        RAISE EXCEPTION 'password_change: limits out of bounds' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT us.* INTO u FROM public.users us JOIN public.auth_sessions s ON s.user_id = us.id
     WHERE us.id = p_user_id AND s.id = p_session_id AND s.revoked_at IS NULL AND s.expires_at > now() AND us.is_active
       FOR UPDATE OF us;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unauthenticated'::text, NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    UPDATE public.users SET password_hash = p_new_hash, updated_at = now() WHERE id = u.id;
    UPDATE public.auth_sessions SET revoked_at = now(), revoked_reason = 'password_change'
     WHERE user_id = u.id AND revoked_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO public.auth_sessions (user_id, organization_id, expires_at, client_address, user_agent)
    VALUES (u.id, u.organization_id, now() + p_refresh_max, p_client, left(p_user_agent, 512))
    RETURNING id INTO sid;
    exp := least(now() + p_refresh_idle, now() + p_refresh_max);
    INSERT INTO public.auth_refresh_tokens (token_hash, session_id, organization_id, expires_at)
    VALUES (p_refresh_hash, sid, u.organization_id, exp);
    INSERT INTO public.audit_log (organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, details)
    VALUES (u.organization_id, u.id, u.email, 'auth.password_change', 'user', u.id::text, 'allowed',
            jsonb_build_object('client', host(p_client), 'sessions_revoked', n));
    RETURN QUERY SELECT 'ok'::text, sid, exp;
END $_$;

CREATE FUNCTION app.report_settings() RETURNS TABLE(time_zone text, policy jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT o.time_zone, p.content
    FROM public.organizations o
    LEFT JOIN public.policies p ON p.organization_id = o.id AND p.id = o.report_policy_id
    WHERE o.id = app.org_id()
$$;

CREATE FUNCTION app.scope() RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
    AS $$ SELECT (app.context()).scope $$;

CREATE FUNCTION app.scope_departments() RETURNS bigint[]
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    WITH RECURSIVE ctx AS MATERIALIZED (
        SELECT c.organization_id AS org, c.app_role AS role,
               split_part(c.scope, ':', 1) AS kind, NULLIF(split_part(c.scope, ':', 2), '')::bigint AS id
        FROM app.context() c
    ), tree AS (
        SELECT d.id FROM public.departments d, ctx
        WHERE ctx.role = 'DEPARTMENT_LEAD' AND ctx.kind = 'department'
          AND d.organization_id = ctx.org AND d.id = ctx.id
        UNION
        SELECT d.id FROM tree JOIN public.departments d ON d.parent_id = tree.id, ctx
        WHERE d.organization_id = ctx.org
    )
    SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM (
        SELECT id FROM tree
        UNION
        SELECT e.department_id FROM public.employees e, ctx
        WHERE ctx.role = 'EMPLOYEE' AND ctx.kind = 'employee'
          AND e.organization_id = ctx.org AND e.id = ctx.id AND e.department_id IS NOT NULL
    ) s
$$;

CREATE FUNCTION app.scope_employees() RETURNS bigint[]
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    WITH ctx AS MATERIALIZED (
        SELECT c.organization_id AS org, c.app_role AS role,
               split_part(c.scope, ':', 1) AS kind, NULLIF(split_part(c.scope, ':', 2), '')::bigint AS id,
               CASE WHEN c.app_role = 'DEPARTMENT_LEAD' THEN app.scope_departments() END AS depts
        FROM app.context() c
    )
    SELECT coalesce(array_agg(e.id ORDER BY e.id), '{}')
    FROM public.employees e, ctx
    WHERE e.organization_id = ctx.org
      AND ((ctx.role = 'DEPARTMENT_LEAD' AND e.department_id = ANY (ctx.depts))
        OR (ctx.role = 'EMPLOYEE' AND ctx.kind = 'employee' AND e.id = ctx.id))
$$;

CREATE FUNCTION app.scope_identities(p_kind text) RETURNS text[]
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    WITH ctx AS MATERIALIZED (
        SELECT app.org_id() AS org, app.scope_employees() AS ids
    )
    SELECT coalesce(array_agg(DISTINCT v ORDER BY v), '{}') FROM (
        SELECT i.value AS v FROM public.employee_identities i, ctx
        WHERE i.organization_id = ctx.org AND i.kind = p_kind AND i.employee_id = ANY (ctx.ids)
        UNION ALL
        SELECT e.employee_number FROM public.employees e, ctx
        WHERE p_kind = 'employee_number' AND e.organization_id = ctx.org AND e.id = ANY (ctx.ids)
    ) s
$$;

CREATE FUNCTION app.sees_whole_organization() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT r IS NULL OR r IN ('ADMIN', 'ORG_ADMIN', 'HR') FROM (SELECT app.app_role() AS r) c
$$;

CREATE FUNCTION app.session_active(p_session_id uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT EXISTS (SELECT 1 FROM public.auth_sessions s JOIN public.users u ON u.id = s.user_id
                    WHERE s.id = p_session_id AND s.revoked_at IS NULL AND s.expires_at > now() AND u.is_active)
$$;

CREATE FUNCTION app.session_email(p_user_id bigint, p_session_id uuid) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT u.email FROM public.users u JOIN public.auth_sessions s ON s.user_id = u.id
     WHERE u.id = p_user_id AND s.id = p_session_id AND s.revoked_at IS NULL AND s.expires_at > now() AND u.is_active
$$;

CREATE FUNCTION app.session_logout(p_hash bytea, p_client inet) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    s public.auth_sessions;
BEGIN
    UPDATE public.auth_sessions a SET revoked_at = now(), revoked_reason = 'logout'
      FROM public.auth_refresh_tokens t
     WHERE t.token_hash = p_hash AND a.id = t.session_id AND a.revoked_at IS NULL
    RETURNING a.* INTO s;
    IF s.id IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO public.audit_log (organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, details)
    SELECT s.organization_id, u.id, u.email, 'auth.logout', 'session', s.id::text, 'allowed',
           jsonb_build_object('client', host(p_client))
      FROM public.users u WHERE u.id = s.user_id;
    RETURN true;
END $$;

CREATE FUNCTION app.session_refresh(p_old_hash bytea, p_new_hash bytea, p_refresh_idle interval, p_client inet) RETURNS TABLE(outcome text, session_id uuid, user_id bigint, organization_id bigint, role text, department_id bigint, employee_id bigint, email text, refresh_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    t   public.auth_refresh_tokens;
    s   public.auth_sessions;
    u   public.users;
    fam uuid;
    exp timestamptz;
BEGIN
    IF p_refresh_idle IS NULL OR p_refresh_idle < interval '1 minute' OR p_refresh_idle > interval '90 days' THEN
        RAISE EXCEPTION 'session_refresh: idle window out of bounds' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_new_hash IS NULL OR length(p_new_hash) <> 32 THEN
        RAISE EXCEPTION 'session_refresh: a refresh token hash is 32 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Locks the session, then the token: the order of every other writer
    -- (logout, revocations, a login's clean-up cascading to the tokens).
    -- Two refreshes with one token queue on the session; the second then
    -- sees the token spent (reuse).
    SELECT r.session_id INTO fam FROM public.auth_refresh_tokens r WHERE r.token_hash = p_old_hash;
    IF fam IS NOT NULL THEN
        SELECT * INTO s FROM public.auth_sessions WHERE id = fam FOR UPDATE;
        SELECT * INTO t FROM public.auth_refresh_tokens WHERE token_hash = p_old_hash FOR UPDATE;
    END IF;
    IF s.id IS NULL OR t.token_hash IS NULL THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::uuid, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint,
                            NULL::bigint, NULL::text, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT * INTO u FROM public.users WHERE id = s.user_id;
    IF s.revoked_at IS NOT NULL THEN
        outcome := 'revoked';
    ELSIF t.spent_at IS NOT NULL THEN
        UPDATE public.auth_sessions SET revoked_at = now(), revoked_reason = 'reuse' WHERE id = s.id;
        INSERT INTO public.audit_log (organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, details)
        VALUES (s.organization_id, u.id, u.email, 'auth.refresh_reuse', 'session', s.id::text, 'denied',
                jsonb_build_object('client', host(p_client), 'spent_at', t.spent_at));
        outcome := 'reuse';
    ELSIF t.expires_at <= now() OR s.expires_at <= now() THEN
        outcome := 'expired';
    ELSIF NOT u.is_active THEN
        UPDATE public.auth_sessions SET revoked_at = now(), revoked_reason = 'disabled' WHERE id = s.id;
        outcome := 'disabled';
    ELSE
        outcome := 'ok';
    END IF;
    IF outcome <> 'ok' THEN
        RETURN QUERY SELECT outcome, s.id, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint, NULL::bigint,
                            NULL::text, NULL::timestamptz;
        RETURN;
    END IF;
    UPDATE public.auth_refresh_tokens SET spent_at = now() WHERE token_hash = t.token_hash;
    exp := least(now() + p_refresh_idle, s.expires_at);
    INSERT INTO public.auth_refresh_tokens (token_hash, session_id, organization_id, expires_at)
    VALUES (p_new_hash, s.id, s.organization_id, exp);
    UPDATE public.auth_sessions SET last_used_at = now() WHERE id = s.id;
    RETURN QUERY SELECT 'ok'::text, s.id, u.id, u.organization_id, u.role, u.department_id, u.employee_id, u.email, exp;
END $$;

CREATE FUNCTION app.sessions_revoke_user(p_user_id bigint, p_session_id uuid, p_client inet) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    u public.users;
    n integer;
BEGIN
    SELECT us.* INTO u FROM public.users us JOIN public.auth_sessions s ON s.user_id = us.id
     WHERE us.id = p_user_id AND s.id = p_session_id AND s.revoked_at IS NULL AND s.expires_at > now();
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    UPDATE public.auth_sessions SET revoked_at = now(), revoked_reason = 'logout_everywhere'
     WHERE user_id = u.id AND revoked_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO public.audit_log (organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, details)
    VALUES (u.organization_id, u.id, u.email, 'auth.logout_everywhere', 'user', u.id::text, 'allowed',
            jsonb_build_object('client', host(p_client), 'sessions', n));
    RETURN n;
END $$;

CREATE FUNCTION app.set_user_language(p_language text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    c app.tenant_context := app.context();
BEGIN
    IF c IS NULL OR c.user_id IS NULL OR c.app_role IS NULL THEN
        RETURN false;
    END IF;
    UPDATE public.users SET language = p_language, updated_at = now()
     WHERE id = c.user_id
       AND (organization_id = c.organization_id OR (organization_id IS NULL AND c.app_role = 'ADMIN'));
    RETURN FOUND;
END $$;

CREATE FUNCTION app.user_id() RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
    AS $$ SELECT (app.context()).user_id $$;

CREATE FUNCTION app.user_sessions_end(p_user_id bigint) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    c   app.tenant_context := app.context();
    org bigint;
    n   integer;
BEGIN
    IF c IS NULL OR c.app_role IS NULL OR c.app_role NOT IN ('ADMIN', 'ORG_ADMIN') THEN
        RETURN -1;
    END IF;
    SELECT organization_id INTO org FROM public.users WHERE id = p_user_id;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    IF NOT coalesce((c.app_role = 'ADMIN' AND session_user = 'staff_admin')
                    OR (c.app_role = 'ORG_ADMIN' AND org = c.organization_id), false) THEN
        RETURN -1;
    END IF;
    UPDATE public.auth_sessions SET revoked_at = now(), revoked_reason = 'password_reset'
     WHERE user_id = p_user_id AND revoked_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

CREATE FUNCTION app.users_end_sessions() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    UPDATE public.auth_sessions
       SET revoked_at = now(), revoked_reason = CASE WHEN NEW.is_active THEN 'user_changed' ELSE 'disabled' END
     WHERE user_id = NEW.id AND revoked_at IS NULL;
    RETURN NULL;
END $$;

CREATE FUNCTION app.writes_organization() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT r IS NULL OR r IN ('ADMIN', 'ORG_ADMIN') FROM (SELECT app.app_role() AS r) c
$$;

CREATE FUNCTION app.writes_people() RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT r IS NULL OR r IN ('ADMIN', 'ORG_ADMIN', 'HR') FROM (SELECT app.app_role() AS r) c
$$;

CREATE FUNCTION monitoring.activity_backlog(p_before timestamp with time zone) RETURNS TABLE(hours bigint, sids bigint, oldest timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT count(*), count(DISTINCT (d.organization_id, d.user_sid)), min(d.hour)
    FROM monitoring.activity_dirty d
    WHERE d.hour < p_before
$$;

CREATE FUNCTION monitoring.activity_claim(p_sids integer, p_before timestamp with time zone) RETURNS TABLE(organization_id bigint, user_sid text, hour timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    r record;
    taken integer := 0;
BEGIN
    IF p_sids IS NULL OR p_sids < 1 OR p_sids > 10000 THEN
        RAISE EXCEPTION 'activity_claim: % sids at once, between 1 and 10000', p_sids USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR r IN SELECT DISTINCT d.organization_id AS org, d.user_sid AS sid FROM monitoring.activity_dirty d
             WHERE d.hour < p_before ORDER BY 1, 2 LOOP
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended('monitoring.activity:' || r.org || ':' || r.sid, 0));
        RETURN QUERY
            DELETE FROM monitoring.activity_dirty d WHERE d.organization_id = r.org AND d.user_sid = r.sid AND d.hour < p_before
            RETURNING d.organization_id, d.user_sid, d.hour;
        taken := taken + 1;
        EXIT WHEN taken >= p_sids;
    END LOOP;
END $$;

CREATE FUNCTION monitoring.activity_source(p_org bigint, p_sid text, p_from timestamp with time zone, p_to timestamp with time zone) RETURNS TABLE(kind text, process_name text, url text, datetime timestamp with time zone, duration_seconds integer)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_to < p_from OR p_to - p_from > interval '31 days' THEN
        RAISE EXCEPTION 'activity_source: bad range [%, %)', p_from, p_to USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
        SELECT 'window'::text, a.process_name, a.url, a.datetime, a.duration_seconds
        FROM monitoring.active_windows a
        WHERE a.organization_id = p_org AND a.user_sid = p_sid
          AND a.datetime >= p_from - interval '7 days' AND a.datetime < p_to
        UNION ALL
        SELECT 'window'::text, f.process_name, f.url, f.datetime, f.duration_seconds
        FROM monitoring_fallback.active_windows f
        WHERE f.organization_id = p_org AND f.user_sid = p_sid
          AND f.datetime >= p_from - interval '7 days' AND f.datetime < p_to
          AND NOT EXISTS (SELECT 1 FROM monitoring.active_windows m
                          WHERE m.organization_id = f.organization_id AND m.id = f.id AND m.datetime = f.datetime)
        UNION ALL
        SELECT 'site'::text, NULL::text, v.url, v.datetime, v.duration_seconds
        FROM monitoring.visited_sites v
        WHERE v.organization_id = p_org AND v.user_sid = p_sid
          AND v.datetime >= p_from - interval '7 days' AND v.datetime < p_to
        UNION ALL
        SELECT 'site'::text, NULL::text, f.url, f.datetime, f.duration_seconds
        FROM monitoring_fallback.visited_sites f
        WHERE f.organization_id = p_org AND f.user_sid = p_sid
          AND f.datetime >= p_from - interval '7 days' AND f.datetime < p_to
          AND NOT EXISTS (SELECT 1 FROM monitoring.visited_sites m
                          WHERE m.organization_id = f.organization_id AND m.id = f.id AND m.datetime = f.datetime);
END $$;

CREATE FUNCTION monitoring.activity_store(p_org bigint, p_sid text, p_day date, p_time_zone text, p_active_minutes bytea, p_first_at timestamp with time zone, p_last_at timestamp with time zone, p_kinds text[], p_process_names text[], p_hosts text[], p_seconds bigint[], p_events bigint[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    n integer := coalesce(cardinality(p_kinds), 0);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                   WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted AND l.objsubid = 1
                     AND ((l.classid::bigint << 32) | l.objid::bigint)
                         = hashtextextended('monitoring.activity:' || p_org || ':' || p_sid, 0)) THEN
        RAISE EXCEPTION 'activity_store: (%, %) is not claimed in this transaction', p_org, p_sid
            USING ERRCODE = 'lock_not_available';
    END IF;
    IF n > 100000 OR coalesce(cardinality(p_process_names), 0) <> n OR coalesce(cardinality(p_hosts), 0) <> n
       OR coalesce(cardinality(p_seconds), 0) <> n OR coalesce(cardinality(p_events), 0) <> n THEN
        RAISE EXCEPTION 'activity_store: usage arrays of unequal length or too long' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM monitoring.activity_day_usage WHERE organization_id = p_org AND user_sid = p_sid AND day = p_day;
    INSERT INTO monitoring.activity_days AS d (organization_id, user_sid, day, time_zone, active_minutes, first_at, last_at, computed_at)
    VALUES (p_org, p_sid, p_day, p_time_zone, p_active_minutes, p_first_at, p_last_at, now())
    ON CONFLICT (organization_id, user_sid, day) DO UPDATE
        SET time_zone = EXCLUDED.time_zone, active_minutes = EXCLUDED.active_minutes, first_at = EXCLUDED.first_at,
            last_at = EXCLUDED.last_at, computed_at = EXCLUDED.computed_at;
    INSERT INTO monitoring.activity_day_usage (organization_id, user_sid, day, kind, process_name, host, seconds, events)
    SELECT p_org, p_sid, p_day, t.kind, t.process_name, t.host, t.seconds, t.events
    FROM unnest(p_kinds, p_process_names, p_hosts, p_seconds, p_events) AS t(kind, process_name, host, seconds, events);
END $$;

CREATE FUNCTION monitoring.activity_time_zone(p_org bigint) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT coalesce((SELECT o.time_zone FROM public.organizations o WHERE o.id = p_org), 'UTC')
$$;

CREATE FUNCTION monitoring.apply_compression(p_table text) RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    max_compressed CONSTANT integer := 10;
    keep_days integer;
    ext text;
    after interval;
    n bigint := 0;
    r record;
BEGIN
    SELECT rt.days INTO keep_days FROM monitoring.retention rt WHERE rt.table_name = p_table;
    IF keep_days IS NULL THEN
        RAISE EXCEPTION 'apply_compression: % is not a time-series table', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF monitoring.storage_kind() <> 'timescaledb' THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('monitoring.apply_compression.' || p_table));
    SELECT e.extnamespace::regnamespace::text INTO ext FROM pg_extension e WHERE e.extname = 'timescaledb';
    SELECT (jb.config ->> 'compress_after')::interval INTO after FROM timescaledb_information.jobs jb
    WHERE jb.proc_name = 'policy_compression' AND jb.hypertable_schema = 'monitoring' AND jb.hypertable_name = p_table
    ORDER BY jb.job_id LIMIT 1;
    IF after IS NULL THEN
        RETURN; -- no compression policy (migration 00013 removes it while it rebuilds the key)
    END IF;
    after := greatest(after, interval '1 day');
    FOR r IN
        SELECT format('%I.%I', ch.chunk_schema, ch.chunk_name) AS chunk
        FROM timescaledb_information.chunks ch
        WHERE ch.hypertable_schema = 'monitoring' AND ch.hypertable_name = p_table AND NOT ch.is_compressed
          AND ch.range_end <= now() - after AND ch.range_end > now() - make_interval(days => keep_days)
        ORDER BY ch.range_end
        LIMIT max_compressed
    LOOP
        EXECUTE format('SELECT %I.compress_chunk(%L::regclass, if_not_compressed => true)', ext, r.chunk);
        n := n + 1;
        RETURN NEXT r.chunk;
    END LOOP;
    INSERT INTO monitoring.maintainer_policy_runs AS m VALUES ('compression', p_table, now(), 1, n)
        ON CONFLICT (kind, table_name) DO UPDATE SET last_run_at = now(), runs = m.runs + 1, chunks = m.chunks + n;
END $$;

CREATE FUNCTION monitoring.apply_retention(p_table text) RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
DECLARE
    max_dropped CONSTANT integer := 100;
    keep_days integer;
    ext text;
    cutoff timestamptz;
    upto timestamptz;
    n bigint := 0;
    c text;
BEGIN
    SELECT r.days INTO keep_days FROM monitoring.retention r WHERE r.table_name = p_table;
    IF keep_days IS NULL THEN
        RAISE EXCEPTION 'apply_retention: % is not a time-series table', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF monitoring.storage_kind() <> 'timescaledb' THEN
        RETURN;
    END IF;
    -- Concurrent maintainers (replicas) take turns per table.
    PERFORM pg_advisory_xact_lock(hashtext('monitoring.apply_retention.' || p_table));
    SELECT e.extnamespace::regnamespace::text INTO ext FROM pg_extension e WHERE e.extname = 'timescaledb';
    cutoff := now() - make_interval(days => keep_days);
    -- The bound: no further than the end of the 100th oldest expired chunk.
    SELECT max(x.range_end) INTO upto FROM (
        SELECT ch.range_end FROM timescaledb_information.chunks ch
        WHERE ch.hypertable_schema = 'monitoring' AND ch.hypertable_name = p_table AND ch.range_end <= cutoff
        ORDER BY ch.range_end LIMIT max_dropped) x;
    IF upto IS NOT NULL THEN
        FOR c IN EXECUTE format('SELECT %I.drop_chunks(%L::regclass, older_than => $1)', ext, 'monitoring.' || quote_ident(p_table))
                 USING least(upto, cutoff) LOOP
            n := n + 1;
            RETURN NEXT c;
        END LOOP;
    END IF;
    INSERT INTO monitoring.maintainer_policy_runs AS m VALUES ('retention', p_table, now(), 1, n)
        ON CONFLICT (kind, table_name) DO UPDATE SET last_run_at = now(), runs = m.runs + 1, chunks = m.chunks + n;
END $_$;

CREATE FUNCTION monitoring.chunk_checksum(p_schema text, p_table text, p_ids uuid[], p_times timestamp with time zone[]) RETURNS TABLE(n bigint, checksum text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
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
END $_$;

CREATE FUNCTION monitoring.drop_expired_partitions() RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
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
END $_$;

CREATE FUNCTION monitoring.drop_expired_partitions(p_now timestamp with time zone) RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT n.nspname, c.relname, ret.days, to_date(right(c.relname, 8), 'YYYYMMDD') AS day
        FROM monitoring.retention ret
        CROSS JOIN unnest(ARRAY['monitoring', 'monitoring_fallback']) AS s(schema_name)
        JOIN pg_inherits i ON i.inhparent = to_regclass(format('%I.%I', s.schema_name, ret.table_name))
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname ~ '_p[0-9]{8}$'
          AND (s.schema_name = 'monitoring_fallback' OR monitoring.storage_kind() = 'partitions')
    LOOP
        IF ((r.day + 1)::timestamp AT TIME ZONE 'UTC') <= p_now - make_interval(days => r.days) THEN
            EXECUTE format('DROP TABLE %I.%I', r.nspname, r.relname);
            RETURN NEXT r.nspname || '.' || r.relname;
        END IF;
    END LOOP;
END $_$;

CREATE FUNCTION monitoring.ensure_day_partitions(p_schema text, p_tables text[], p_days date[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    t text;
    d date;
    keep integer;
    created integer := 0;
    pname text;
BEGIN
    IF p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'ensure_day_partitions: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(p_days) > 62 THEN
        RAISE EXCEPTION 'ensure_day_partitions: % days at once, at most 62', cardinality(p_days)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF p_schema = 'monitoring' AND monitoring.storage_kind() <> 'partitions' THEN
        RETURN 0; -- TimescaleDB creates its chunks itself
    END IF;
    FOREACH t IN ARRAY p_tables LOOP
        SELECT days INTO keep FROM monitoring.retention WHERE table_name = t;
        IF keep IS NULL THEN
            RAISE EXCEPTION 'ensure_day_partitions: unknown table %', t USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOREACH d IN ARRAY p_days LOOP
            -- A day wholly past retention would be dropped at the next
            -- maintenance run: never create it (ingest refuses such events).
            CONTINUE WHEN ((d + 1)::timestamp AT TIME ZONE 'UTC') <= now() - make_interval(days => keep);
            CONTINUE WHEN d > (now() AT TIME ZONE 'UTC')::date + 2;
            pname := t || '_p' || to_char(d, 'YYYYMMDD');
            IF to_regclass(format('%I.%I', p_schema, pname)) IS NULL THEN
                PERFORM pg_advisory_xact_lock(hashtext(p_schema || '.' || pname));
                IF to_regclass(format('%I.%I', p_schema, pname)) IS NULL THEN
                    EXECUTE format(
                        'CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                        p_schema, pname, p_schema, t, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
                    EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', p_schema, pname);
                    created := created + 1;
                END IF;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;

CREATE FUNCTION monitoring.ensure_partitions(p_from date, p_to date) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    s text;
    t text;
    d date;
    created integer := 0;
    pname text;
BEGIN
    IF p_to < p_from OR p_to - p_from > 400 THEN
        RAISE EXCEPTION 'ensure_partitions: bad range % .. %', p_from, p_to
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH s IN ARRAY ARRAY['monitoring', 'monitoring_fallback'] LOOP
        CONTINUE WHEN s = 'monitoring' AND monitoring.storage_kind() <> 'partitions';
        FOR t IN SELECT table_name FROM monitoring.retention ORDER BY table_name LOOP
            d := p_from;
            WHILE d <= p_to LOOP
                pname := t || '_p' || to_char(d, 'YYYYMMDD');
                IF to_regclass(format('%I.%I', s, pname)) IS NULL THEN
                    PERFORM pg_advisory_xact_lock(hashtext(s || '.' || pname));
                    IF to_regclass(format('%I.%I', s, pname)) IS NULL THEN
                        EXECUTE format(
                            'CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                            s, pname, s, t, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
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

CREATE FUNCTION monitoring.ensure_recent_partitions(p_behind integer, p_ahead integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
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

CREATE FUNCTION monitoring.fallback_chunk(p_table text, p_day date, p_limit integer) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
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
END $_$;

CREATE FUNCTION monitoring.fallback_days(p_table text) RETURNS SETOF date
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
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
END $_$;

CREATE FUNCTION monitoring.fallback_delete(p_table text, p_ids uuid[], p_times timestamp with time zone[]) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
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
END $_$;

CREATE FUNCTION monitoring.fallback_organizations() RETURNS SETOF bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT organization_id FROM monitoring_fallback.active_windows
    UNION SELECT organization_id FROM monitoring_fallback.visited_sites
    UNION SELECT organization_id FROM monitoring_fallback.screenshots
    UNION SELECT organization_id FROM monitoring_fallback.user_sessions
    UNION SELECT organization_id FROM monitoring_fallback.device_events
$$;

CREATE FUNCTION monitoring.fallback_rows() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT (SELECT count(*) FROM monitoring_fallback.active_windows) + (SELECT count(*) FROM monitoring_fallback.visited_sites)
         + (SELECT count(*) FROM monitoring_fallback.screenshots) + (SELECT count(*) FROM monitoring_fallback.user_sessions)
         + (SELECT count(*) FROM monitoring_fallback.device_events)
$$;

CREATE FUNCTION monitoring.insert_active_windows(p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[], p_computer_uids text[], p_user_sids text[], p_window_titles text[], p_process_names text[], p_urls text[], p_datetimes timestamp with time zone[], p_durations integer[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    n integer := coalesce(cardinality(p_ids), 0);
    inserted integer;
BEGIN
    IF p_schema IS NULL OR p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'insert_active_windows: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n > 10000 THEN
        RAISE EXCEPTION 'insert_active_windows: % rows at once, at most 10000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_seqs), 0) <> n OR coalesce(cardinality(p_agent_uids), 0) <> n
       OR coalesce(cardinality(p_computer_uids), 0) <> n OR coalesce(cardinality(p_user_sids), 0) <> n
       OR coalesce(cardinality(p_window_titles), 0) <> n OR coalesce(cardinality(p_process_names), 0) <> n
       OR coalesce(cardinality(p_urls), 0) <> n OR coalesce(cardinality(p_datetimes), 0) <> n
       OR coalesce(cardinality(p_durations), 0) <> n THEN
        RAISE EXCEPTION 'insert_active_windows: column arrays of unequal length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_org IS NULL OR p_org IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "active_windows"'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_schema = 'monitoring' THEN
        BEGIN
            WITH ins AS (
                INSERT INTO monitoring.active_windows
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_window_titles), unnest(p_process_names), unnest(p_urls),
                       unnest(p_datetimes), unnest(p_durations)
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        EXCEPTION WHEN unique_violation THEN
            WITH ins AS (
                INSERT INTO monitoring.active_windows
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_window_titles), unnest(p_process_names), unnest(p_urls),
                       unnest(p_datetimes), unnest(p_durations)
                ON CONFLICT DO NOTHING
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        END;
    ELSE
        BEGIN
            WITH ins AS (
                INSERT INTO monitoring_fallback.active_windows
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_window_titles), unnest(p_process_names), unnest(p_urls),
                       unnest(p_datetimes), unnest(p_durations)
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        EXCEPTION WHEN unique_violation THEN
            WITH ins AS (
                INSERT INTO monitoring_fallback.active_windows
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_window_titles), unnest(p_process_names), unnest(p_urls),
                       unnest(p_datetimes), unnest(p_durations)
                ON CONFLICT DO NOTHING
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        END;
    END IF;
    RETURN inserted;
END $$;

CREATE FUNCTION monitoring.insert_device_events(p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_device_ids bigint[], p_device_serials text[], p_datetimes timestamp with time zone[], p_employee_numbers text[], p_card_numbers text[], p_doors integer[], p_major_codes integer[], p_minor_codes integer[], p_verify_modes text[], p_directions text[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    n integer := coalesce(cardinality(p_ids), 0);
    inserted integer;
BEGIN
    IF p_schema IS NULL OR p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'insert_device_events: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n > 10000 THEN
        RAISE EXCEPTION 'insert_device_events: % rows at once, at most 10000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_seqs), 0) <> n OR coalesce(cardinality(p_device_ids), 0) <> n
       OR coalesce(cardinality(p_device_serials), 0) <> n OR coalesce(cardinality(p_datetimes), 0) <> n
       OR coalesce(cardinality(p_employee_numbers), 0) <> n OR coalesce(cardinality(p_card_numbers), 0) <> n
       OR coalesce(cardinality(p_doors), 0) <> n OR coalesce(cardinality(p_major_codes), 0) <> n
       OR coalesce(cardinality(p_minor_codes), 0) <> n OR coalesce(cardinality(p_verify_modes), 0) <> n
       OR coalesce(cardinality(p_directions), 0) <> n THEN
        RAISE EXCEPTION 'insert_device_events: column arrays of unequal length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_org IS NULL OR p_org IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "device_events"'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_schema = 'monitoring' THEN
        BEGIN
            INSERT INTO monitoring.device_events
                (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_device_ids), unnest(p_device_serials),
                   unnest(p_datetimes), unnest(p_employee_numbers), unnest(p_card_numbers), unnest(p_doors),
                   unnest(p_major_codes), unnest(p_minor_codes), unnest(p_verify_modes), unnest(p_directions);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring.device_events
                (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_device_ids), unnest(p_device_serials),
                   unnest(p_datetimes), unnest(p_employee_numbers), unnest(p_card_numbers), unnest(p_doors),
                   unnest(p_major_codes), unnest(p_minor_codes), unnest(p_verify_modes), unnest(p_directions)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    ELSE
        BEGIN
            INSERT INTO monitoring_fallback.device_events
                (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_device_ids), unnest(p_device_serials),
                   unnest(p_datetimes), unnest(p_employee_numbers), unnest(p_card_numbers), unnest(p_doors),
                   unnest(p_major_codes), unnest(p_minor_codes), unnest(p_verify_modes), unnest(p_directions);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring_fallback.device_events
                (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_device_ids), unnest(p_device_serials),
                   unnest(p_datetimes), unnest(p_employee_numbers), unnest(p_card_numbers), unnest(p_doors),
                   unnest(p_major_codes), unnest(p_minor_codes), unnest(p_verify_modes), unnest(p_directions)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    END IF;
    RETURN inserted;
END $$;

CREATE FUNCTION monitoring.insert_screenshots(p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[], p_computer_uids text[], p_user_sids text[], p_file_paths text[], p_file_sizes bigint[], p_sha256s text[], p_datetimes timestamp with time zone[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    n integer := coalesce(cardinality(p_ids), 0);
    inserted integer;
BEGIN
    IF p_schema IS NULL OR p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'insert_screenshots: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n > 10000 THEN
        RAISE EXCEPTION 'insert_screenshots: % rows at once, at most 10000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_seqs), 0) <> n OR coalesce(cardinality(p_agent_uids), 0) <> n
       OR coalesce(cardinality(p_computer_uids), 0) <> n OR coalesce(cardinality(p_user_sids), 0) <> n
       OR coalesce(cardinality(p_file_paths), 0) <> n OR coalesce(cardinality(p_file_sizes), 0) <> n
       OR coalesce(cardinality(p_sha256s), 0) <> n OR coalesce(cardinality(p_datetimes), 0) <> n THEN
        RAISE EXCEPTION 'insert_screenshots: column arrays of unequal length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_org IS NULL OR p_org IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "screenshots"'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_schema = 'monitoring' THEN
        BEGIN
            INSERT INTO monitoring.screenshots
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_file_paths), unnest(p_file_sizes), unnest(p_sha256s),
                   unnest(p_datetimes);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring.screenshots
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_file_paths), unnest(p_file_sizes), unnest(p_sha256s),
                   unnest(p_datetimes)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    ELSE
        BEGIN
            INSERT INTO monitoring_fallback.screenshots
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_file_paths), unnest(p_file_sizes), unnest(p_sha256s),
                   unnest(p_datetimes);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring_fallback.screenshots
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_file_paths), unnest(p_file_sizes), unnest(p_sha256s),
                   unnest(p_datetimes)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    END IF;
    RETURN inserted;
END $$;

CREATE FUNCTION monitoring.insert_user_sessions(p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[], p_computer_uids text[], p_user_sids text[], p_session_types text[], p_datetimes timestamp with time zone[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    n integer := coalesce(cardinality(p_ids), 0);
    inserted integer;
BEGIN
    IF p_schema IS NULL OR p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'insert_user_sessions: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n > 10000 THEN
        RAISE EXCEPTION 'insert_user_sessions: % rows at once, at most 10000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_seqs), 0) <> n OR coalesce(cardinality(p_agent_uids), 0) <> n
       OR coalesce(cardinality(p_computer_uids), 0) <> n OR coalesce(cardinality(p_user_sids), 0) <> n
       OR coalesce(cardinality(p_session_types), 0) <> n OR coalesce(cardinality(p_datetimes), 0) <> n THEN
        RAISE EXCEPTION 'insert_user_sessions: column arrays of unequal length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_org IS NULL OR p_org IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "user_sessions"'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_schema = 'monitoring' THEN
        BEGIN
            INSERT INTO monitoring.user_sessions
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_session_types), unnest(p_datetimes);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring.user_sessions
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_session_types), unnest(p_datetimes)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    ELSE
        BEGIN
            INSERT INTO monitoring_fallback.user_sessions
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_session_types), unnest(p_datetimes);
            GET DIAGNOSTICS inserted = ROW_COUNT;
        EXCEPTION WHEN unique_violation THEN
            INSERT INTO monitoring_fallback.user_sessions
                (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
            SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                   unnest(p_user_sids), unnest(p_session_types), unnest(p_datetimes)
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS inserted = ROW_COUNT;
        END;
    END IF;
    RETURN inserted;
END $$;

CREATE FUNCTION monitoring.insert_visited_sites(p_schema text, p_org bigint, p_gateway uuid, p_ids uuid[], p_seqs bigint[], p_agent_uids text[], p_computer_uids text[], p_user_sids text[], p_urls text[], p_titles text[], p_datetimes timestamp with time zone[], p_durations integer[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    n integer := coalesce(cardinality(p_ids), 0);
    inserted integer;
BEGIN
    IF p_schema IS NULL OR p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'insert_visited_sites: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n > 10000 THEN
        RAISE EXCEPTION 'insert_visited_sites: % rows at once, at most 10000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_seqs), 0) <> n OR coalesce(cardinality(p_agent_uids), 0) <> n
       OR coalesce(cardinality(p_computer_uids), 0) <> n OR coalesce(cardinality(p_user_sids), 0) <> n
       OR coalesce(cardinality(p_urls), 0) <> n OR coalesce(cardinality(p_titles), 0) <> n
       OR coalesce(cardinality(p_datetimes), 0) <> n OR coalesce(cardinality(p_durations), 0) <> n THEN
        RAISE EXCEPTION 'insert_visited_sites: column arrays of unequal length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_org IS NULL OR p_org IS DISTINCT FROM app.org_id() THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "visited_sites"'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_schema = 'monitoring' THEN
        BEGIN
            WITH ins AS (
                INSERT INTO monitoring.visited_sites
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_urls), unnest(p_titles), unnest(p_datetimes), unnest(p_durations)
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        EXCEPTION WHEN unique_violation THEN
            WITH ins AS (
                INSERT INTO monitoring.visited_sites
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_urls), unnest(p_titles), unnest(p_datetimes), unnest(p_durations)
                ON CONFLICT DO NOTHING
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        END;
    ELSE
        BEGIN
            WITH ins AS (
                INSERT INTO monitoring_fallback.visited_sites
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_urls), unnest(p_titles), unnest(p_datetimes), unnest(p_durations)
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        EXCEPTION WHEN unique_violation THEN
            WITH ins AS (
                INSERT INTO monitoring_fallback.visited_sites
                    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
                SELECT unnest(p_ids), p_org, p_gateway, unnest(p_seqs), unnest(p_agent_uids), unnest(p_computer_uids),
                       unnest(p_user_sids), unnest(p_urls), unnest(p_titles), unnest(p_datetimes), unnest(p_durations)
                ON CONFLICT DO NOTHING
                RETURNING user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT p_org, i.user_sid, h
                FROM ins i, generate_series(date_trunc('hour', i.datetime, 'UTC'),
                                            date_trunc('hour', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), 'UTC'),
                                            interval '1 hour') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) INTO inserted FROM ins;
        END;
    END IF;
    RETURN inserted;
END $$;

CREATE FUNCTION monitoring.job_health() RETURNS TABLE(job_id integer, kind text, table_name text, schedule_interval interval, scheduled boolean, last_run_started_at timestamp with time zone, last_successful_finish timestamp with time zone, last_run_status text, total_runs bigint, total_failures bigint, consecutive_failures integer, next_start timestamp with time zone, failing boolean, overdue boolean, maintainer_last_run timestamp with time zone)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    margin CONSTANT interval := interval '1 hour';
BEGIN
    IF monitoring.storage_kind() <> 'timescaledb' THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH j AS (
        SELECT jb.job_id,
               CASE jb.proc_name WHEN 'policy_retention' THEN 'retention'
                                 WHEN 'policy_compression' THEN 'compression'
                                 WHEN 'policy_refresh_continuous_aggregate' THEN 'refresh'
                                 ELSE jb.proc_name::text END AS kind,
               jb.hypertable_name::text AS table_name, jb.schedule_interval, jb.scheduled,
               NULLIF(NULLIF(bs.last_start, '-infinity'), 'infinity') AS last_start,
               NULLIF(NULLIF(bs.last_successful_finish, '-infinity'), 'infinity') AS last_success,
               st.last_run_status, bs.total_runs, bs.total_failures, bs.consecutive_failures,
               NULLIF(NULLIF(bs.next_start, '-infinity'), 'infinity') AS next_start,
               st.job_status
        FROM timescaledb_information.jobs jb
        LEFT JOIN timescaledb_information.job_stats st ON st.job_id = jb.job_id
        LEFT JOIN _timescaledb_internal.bgw_job_stat bs ON bs.job_id = jb.job_id
        WHERE jb.hypertable_schema = 'monitoring'
    )
    SELECT j.job_id, j.kind, j.table_name, j.schedule_interval, j.scheduled, j.last_start, j.last_success,
           j.last_run_status, coalesce(j.total_runs, 0), coalesce(j.total_failures, 0),
           coalesce(j.consecutive_failures, 0), j.next_start,
           coalesce(j.last_run_status = 'Failed', false),
           -- coalesce: a job the scheduler has not planned yet has no next
           -- start (NULL), which is not overdue.
           coalesce(NOT j.scheduled
             OR (j.job_status IS DISTINCT FROM 'Running' AND j.next_start < now() - margin)
             OR (j.last_success IS NOT NULL AND j.last_success < now() - (j.schedule_interval + margin)), false),
           m.last_run_at
    FROM j
    LEFT JOIN monitoring.maintainer_policy_runs m ON m.kind = j.kind AND m.table_name = j.table_name
    UNION ALL
    -- A table without a retention policy: retention stopped, overdue.
    SELECT NULL::integer, 'retention', r.table_name, NULL::interval, false, NULL::timestamptz, NULL::timestamptz,
           NULL::text, 0::bigint, 0::bigint, 0, NULL::timestamptz, false, true, m.last_run_at
    FROM monitoring.retention r
    LEFT JOIN monitoring.maintainer_policy_runs m ON m.kind = 'retention' AND m.table_name = r.table_name
    WHERE NOT EXISTS (SELECT 1 FROM j WHERE j.kind = 'retention' AND j.table_name = r.table_name)
    ORDER BY 2, 3, 1;
END $$;

CREATE FUNCTION monitoring.resync_insert(p_table text, p_rows jsonb) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
DECLARE
    org bigint := app.org_id();
    n integer;
    foreign_rows bigint;
    inserted integer;
BEGIN
    IF p_table IS NULL OR p_table NOT IN (SELECT table_name FROM monitoring.retention) THEN
        RAISE EXCEPTION 'resync_insert: unknown table %', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(p_rows) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'resync_insert: the rows must be a JSON array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    n := jsonb_array_length(p_rows);
    IF n > 5000 THEN
        RAISE EXCEPTION 'resync_insert: % rows at once, at most 5000', n USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF org IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FILTER (WHERE r.organization_id IS DISTINCT FROM $2)
            FROM jsonb_populate_recordset(NULL::monitoring.%I, $1) r', p_table)
            INTO foreign_rows USING p_rows, org;
    END IF;
    IF org IS NULL OR foreign_rows > 0 THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "%"', p_table
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_table IN ('active_windows', 'visited_sites') THEN
        EXECUTE format('WITH ins AS (
                INSERT INTO monitoring.%1$I SELECT * FROM jsonb_populate_recordset(NULL::monitoring.%1$I, $1)
                ON CONFLICT DO NOTHING
                RETURNING organization_id, user_sid, datetime, duration_seconds
            ), mark AS (
                INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
                SELECT DISTINCT i.organization_id, i.user_sid, h
                FROM ins i, generate_series(date_trunc(''hour'', i.datetime, ''UTC''),
                    date_trunc(''hour'', i.datetime + make_interval(secs => greatest(coalesce(i.duration_seconds, 0), 0)), ''UTC''),
                    interval ''1 hour'') h
                ORDER BY 1, 2, 3
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) FROM ins', p_table) INTO inserted USING p_rows;
    ELSE
        EXECUTE format('INSERT INTO monitoring.%1$I SELECT * FROM jsonb_populate_recordset(NULL::monitoring.%1$I, $1)
            ON CONFLICT DO NOTHING', p_table) USING p_rows;
        GET DIAGNOSTICS inserted = ROW_COUNT;
    END IF;
    RETURN inserted;
END $_$;

CREATE FUNCTION monitoring.retention_delete(p_table text, p_org bigint, p_limit integer) RETURNS TABLE(schema_name text, id uuid, datetime timestamp with time zone, file_path text, file_size bigint, row_json json)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
DECLARE
    lim integer := least(greatest(coalesce(p_limit, 1), 1), 10000);
    h timestamptz;
    s text;
    n integer;
    shot boolean := p_table = 'screenshots';
BEGIN
    IF NOT EXISTS (SELECT 1 FROM monitoring.retention r WHERE r.table_name = p_table) THEN
        RAISE EXCEPTION 'retention_delete: % is not a time-series table', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
                    AND l.classid = 1380270926 AND l.objid = 27 AND l.objsubid = 2 AND l.granted) THEN
        RAISE EXCEPTION 'retention_delete: this session does not hold the retention lock'
            USING ERRCODE = 'lock_not_available';
    END IF;
    SELECT now() - make_interval(days => e.days) INTO h FROM monitoring.retention_effective e
     WHERE e.organization_id = p_org AND e.table_name = p_table AND e.row_by_row;
    IF h IS NULL THEN
        RETURN;
    END IF;
    FOREACH s IN ARRAY ARRAY['monitoring', 'monitoring_fallback'] LOOP
        EXIT WHEN lim <= 0;
        RETURN QUERY EXECUTE format(
            'WITH d AS (DELETE FROM %1$I.%2$I t WHERE (t.id, t.datetime) IN (
                    SELECT k.id, k.datetime FROM %1$I.%2$I k
                     WHERE k.organization_id = $1 AND k.datetime < $2 ORDER BY k.datetime, k.id LIMIT $3)
                 RETURNING t.*)
             SELECT %1$L::text, d.id, d.datetime, %3$s, %4$s, row_to_json(d) FROM d ORDER BY d.datetime, d.id',
            s, p_table,
            CASE WHEN shot THEN 'd.file_path' ELSE 'NULL::text' END,
            CASE WHEN shot THEN 'd.file_size' ELSE 'NULL::bigint' END)
            USING p_org, h, lim;
        GET DIAGNOSTICS n = ROW_COUNT;
        lim := lim - n;
    END LOOP;
END $_$;

CREATE FUNCTION monitoring.retention_expired_partitions() RETURNS TABLE(partition_name text, table_name text, rows bigint, rows_unlisted bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
DECLARE
    r record;
    cnt bigint;
    unlisted bigint;
    listed bigint[];
BEGIN
    FOR r IN
        SELECT format('%I.%I', n.nspname, c.relname) AS qualified, n.nspname || '.' || c.relname AS shown,
               ret.table_name
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
        LIMIT 1000
    LOOP
        SELECT coalesce(array_agg(e.organization_id), '{}') INTO listed FROM monitoring.retention_effective e
         WHERE e.table_name = r.table_name AND e.row_by_row;
        EXECUTE format('SELECT count(*), count(*) FILTER (WHERE p.organization_id <> ALL ($1)) FROM %s p', r.qualified)
           INTO cnt, unlisted USING listed;
        RETURN QUERY SELECT r.shown, r.table_name, cnt, unlisted;
    END LOOP;
    IF monitoring.storage_kind() = 'timescaledb' THEN
        FOR r IN EXECUTE
            'SELECT format(''%I.%I'', ch.chunk_schema, ch.chunk_name) AS qualified, ret.table_name
               FROM timescaledb_information.chunks ch
               JOIN monitoring.retention ret ON ret.table_name = ch.hypertable_name
              WHERE ch.hypertable_schema = ''monitoring'' AND ch.range_end <= now() - make_interval(days => ret.days)
              ORDER BY ch.range_end, 1 LIMIT 1000'
        LOOP
            SELECT coalesce(array_agg(e.organization_id), '{}') INTO listed FROM monitoring.retention_effective e
             WHERE e.table_name = r.table_name AND e.row_by_row;
            EXECUTE format('SELECT count(*), count(*) FILTER (WHERE p.organization_id <> ALL ($1)) FROM %s p', r.qualified)
               INTO cnt, unlisted USING listed;
            RETURN QUERY SELECT r.qualified, r.table_name, cnt, unlisted;
        END LOOP;
    END IF;
END $_$;

CREATE FUNCTION monitoring.retention_horizons() RETURNS TABLE(organization_id bigint, table_name text, days integer, action text, horizon timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT e.organization_id, e.table_name, e.days, e.action, now() - make_interval(days => e.days)
    FROM monitoring.retention_effective e
    WHERE e.row_by_row
    ORDER BY 1, 2
$$;

CREATE FUNCTION monitoring.retention_preview() RETURNS TABLE(organization_id bigint, table_name text, rows bigint, files bigint, bytes bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
DECLARE
    h record;
BEGIN
    FOR h IN SELECT * FROM monitoring.retention_horizons() LOOP
        IF h.table_name = 'screenshots' THEN
            RETURN QUERY
            WITH u AS (
                SELECT s.file_path, s.file_size FROM monitoring.screenshots s
                 WHERE s.organization_id = h.organization_id AND s.datetime < h.horizon
                UNION ALL
                SELECT f.file_path, f.file_size FROM monitoring_fallback.screenshots f
                 WHERE f.organization_id = h.organization_id AND f.datetime < h.horizon
            ), k AS (
                SELECT DISTINCT ON (u.file_path) u.file_path, u.file_size FROM u
                 WHERE u.file_path LIKE 'screenshots/' || h.organization_id || '/%' ORDER BY u.file_path
            )
            SELECT h.organization_id, h.table_name, (SELECT count(*) FROM u)::bigint, (SELECT count(*) FROM k)::bigint,
                   (SELECT coalesce(sum(k.file_size), 0) FROM k)::bigint;
        ELSE
            RETURN QUERY EXECUTE format(
                'SELECT $1::bigint, $2::text,
                        (SELECT count(*) FROM monitoring.%1$I WHERE organization_id = $1 AND datetime < $3)
                      + (SELECT count(*) FROM monitoring_fallback.%1$I WHERE organization_id = $1 AND datetime < $3),
                        0::bigint, 0::bigint', h.table_name)
                USING h.organization_id, h.table_name, h.horizon;
        END IF;
    END LOOP;
END $_$;

CREATE FUNCTION monitoring.retention_rollups(p_limit integer) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    n bigint := 0;
    m bigint;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'retention_rollups: p_limit must be between 1 and 10000, not %', p_limit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
                   AND l.classid = 1380270926 AND l.objid = 27 AND l.objsubid = 2 AND l.granted) THEN
        RAISE EXCEPTION 'retention_rollups: this session does not hold the retention lock'
            USING ERRCODE = 'lock_not_available';
    END IF;

    -- The first local day each organisation keeps, per series.
    CREATE TEMP TABLE IF NOT EXISTS retention_rollup_keep (
        organization_id bigint, table_name text, horizon timestamptz, keep_from date) ON COMMIT DROP;
    TRUNCATE retention_rollup_keep;
    INSERT INTO retention_rollup_keep
    SELECT e.organization_id, e.table_name, now() - make_interval(days => e.days),
           ((now() - make_interval(days => e.days)) AT TIME ZONE o.time_zone)::date
    FROM monitoring.retention_effective e
    JOIN public.organizations o ON o.id = e.organization_id
    WHERE e.table_name IN ('active_windows', 'visited_sites');

    WITH v AS (
        SELECT u.ctid FROM monitoring.activity_day_usage u
        JOIN retention_rollup_keep k ON k.organization_id = u.organization_id
         AND k.table_name = CASE u.kind WHEN 'site' THEN 'visited_sites' ELSE 'active_windows' END
        WHERE u.day < k.keep_from
        LIMIT p_limit
    ), d AS (
        DELETE FROM monitoring.activity_day_usage u USING v WHERE u.ctid = v.ctid RETURNING 1
    )
    SELECT count(*) INTO m FROM d;
    n := n + m;

    WITH v AS (
        SELECT a.organization_id, a.user_sid, a.day FROM monitoring.activity_days a
        JOIN retention_rollup_keep k ON k.organization_id = a.organization_id AND k.table_name = 'active_windows'
        WHERE a.day < k.keep_from
        LIMIT p_limit
    ), d AS (
        DELETE FROM monitoring.activity_days a USING v
        WHERE a.organization_id = v.organization_id AND a.user_sid = v.user_sid AND a.day = v.day
        RETURNING 1
    )
    SELECT count(*) INTO m FROM d;
    n := n + m;

    -- The day the horizon falls in: recomputed from what remains.
    INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour)
    SELECT DISTINCT a.organization_id, a.user_sid, date_trunc('hour', k.horizon)
    FROM monitoring.activity_days a
    JOIN retention_rollup_keep k ON k.organization_id = a.organization_id AND k.table_name = 'active_windows'
    WHERE a.day = k.keep_from
    ON CONFLICT DO NOTHING;
    RETURN n;
END $$;

CREATE FUNCTION monitoring.retention_run_begin(p_dry_run boolean) RETURNS TABLE(run_id bigint, acquired boolean, interrupted integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    n integer := 0;
    id bigint;
BEGIN
    IF p_dry_run IS NULL THEN
        RAISE EXCEPTION 'retention_run_begin: dry_run is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_try_advisory_lock(1380270926, 27) THEN
        INSERT INTO monitoring.retention_runs (dry_run, status, finished_at, error)
        VALUES (p_dry_run, 'skipped', clock_timestamp(), 'another replica holds the retention lock')
        RETURNING retention_runs.id INTO id;
        RETURN QUERY SELECT id, false, 0;
        RETURN;
    END IF;
    -- The lock is ours, so no run is in progress: a 'running' row is a
    -- killed process's.
    UPDATE monitoring.retention_runs r
       SET status = 'failed', finished_at = clock_timestamp(),
           error = 'interrupted: the process running it stopped before it finished'
     WHERE r.status = 'running';
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO monitoring.retention_runs (dry_run, status) VALUES (p_dry_run, 'running')
    RETURNING retention_runs.id INTO id;
    RETURN QUERY SELECT id, true, n;
END $$;

CREATE FUNCTION monitoring.retention_run_finish(p_run bigint, p_error text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    st text := CASE WHEN coalesce(p_error, '') = '' THEN 'succeeded' ELSE 'failed' END;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
                    AND l.classid = 1380270926 AND l.objid = 27 AND l.objsubid = 2 AND l.granted) THEN
        RAISE EXCEPTION 'retention_run_finish: this session does not hold the retention lock'
            USING ERRCODE = 'lock_not_available';
    END IF;
    UPDATE monitoring.retention_runs r
       SET status = st, finished_at = clock_timestamp(), error = left(NULLIF(p_error, ''), 2000)
     WHERE r.id = p_run AND r.status = 'running';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'retention_run_finish: run % is not running', p_run USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_unlock(1380270926, 27);
    RETURN st;
END $$;

CREATE FUNCTION monitoring.retention_run_progress(p_run bigint, p_table text, p_rows bigint, p_files bigint, p_bytes bigint, p_archived integer) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
                    AND l.classid = 1380270926 AND l.objid = 27 AND l.objsubid = 2 AND l.granted) THEN
        RAISE EXCEPTION 'retention_run_progress: this session does not hold the retention lock'
            USING ERRCODE = 'lock_not_available';
    END IF;
    IF coalesce(p_table, '') <> '' AND NOT EXISTS (SELECT 1 FROM monitoring.retention r WHERE r.table_name = p_table) THEN
        RAISE EXCEPTION 'retention_run_progress: % is not a time-series table', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF least(p_rows, p_files, p_bytes, p_archived) < 0 THEN
        RAISE EXCEPTION 'retention_run_progress: negative count' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE monitoring.retention_runs r
       SET rows = CASE WHEN coalesce(p_table, '') = '' THEN r.rows
                       ELSE jsonb_set(r.rows, ARRAY[p_table], to_jsonb(coalesce((r.rows ->> p_table)::bigint, 0) + coalesce(p_rows, 0))) END,
           files = r.files + coalesce(p_files, 0), bytes = r.bytes + coalesce(p_bytes, 0),
           archived = r.archived + coalesce(p_archived, 0)
     WHERE r.id = p_run AND r.status = 'running';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'retention_run_progress: run % is not running', p_run USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;

CREATE FUNCTION monitoring.screenshot_files_referenced(p_org bigint, p_day date, p_paths text[]) RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT s.file_path FROM monitoring.screenshots s
     WHERE s.organization_id = p_org
       AND s.datetime >= (p_day::timestamp AT TIME ZONE 'UTC') AND s.datetime < ((p_day + 1)::timestamp AT TIME ZONE 'UTC')
       AND s.file_path = ANY (p_paths)
    UNION
    SELECT f.file_path FROM monitoring_fallback.screenshots f
     WHERE f.organization_id = p_org
       AND f.datetime >= (p_day::timestamp AT TIME ZONE 'UTC') AND f.datetime < ((p_day + 1)::timestamp AT TIME ZONE 'UTC')
       AND f.file_path = ANY (p_paths)
$$;

CREATE FUNCTION monitoring.storage_kind() RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT CASE WHEN (SELECT relkind FROM pg_class WHERE oid = 'monitoring.active_windows'::regclass) = 'p'
                THEN 'partitions' ELSE 'timescaledb' END
$$;

CREATE FUNCTION monitoring.stored_event_seqs(p_schema text, p_table text, p_ids uuid[], p_times timestamp with time zone[]) RETURNS TABLE(id uuid, datetime timestamp with time zone, seq bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
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
END $_$;

CREATE FUNCTION monitoring.stored_screenshots(p_schema text, p_ids uuid[], p_times timestamp with time zone[]) RETURNS TABLE(id uuid, seq bigint, file_path text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $_$
DECLARE
    org bigint := app.org_id();
BEGIN
    IF p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'stored_screenshots: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF org IS NULL OR cardinality(p_ids) > 10000 THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT s.id, s.seq, s.file_path FROM %I.screenshots s JOIN unnest($1, $2) AS k(id, datetime)
           ON s.id = k.id AND s.datetime = k.datetime WHERE s.organization_id = $3', p_schema)
        USING p_ids, p_times, org;
END $_$;

CREATE FUNCTION public.audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE FUNCTION public.device_commands_follow() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
DECLARE
    ok boolean := coalesce(NEW.result->>'status' = 'ok', false);
BEGIN
    UPDATE public.device_commands d
       SET status = CASE WHEN NEW.status <> 'completed' THEN NEW.status
                         WHEN ok THEN 'completed' ELSE 'failed' END,
           response = CASE WHEN NEW.status IN ('completed', 'failed') THEN NEW.result ELSE d.response END,
           error = CASE WHEN NEW.status IN ('pending', 'delivered') THEN NULL
                        WHEN NEW.status = 'completed' AND ok THEN NULL
                        WHEN NEW.status = 'completed'
                            THEN left(coalesce(nullif(NEW.result->>'message', ''), 'the device command failed'), 2000)
                        ELSE left(coalesce(nullif(NEW.error, ''), NEW.status), 2000) END,
           delivered_at = CASE WHEN NEW.status = 'delivered' THEN coalesce(NEW.delivered_at, now()) ELSE d.delivered_at END,
           completed_at = CASE WHEN NEW.status IN ('pending', 'delivered') THEN NULL
                               ELSE coalesce(NEW.completed_at, now()) END
     WHERE d.gateway_command_id = NEW.id
       AND d.status IN ('pending', 'delivered');
    RETURN NULL;
END $$;

CREATE FUNCTION public.gateway_by_api_key_hash(p_hash bytea) RETURNS TABLE(gateway_id uuid, organization_id bigint, status text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
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

CREATE FUNCTION public.gateway_commands_depth() RETURNS TABLE(status text, type text, commands bigint, oldest timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog'
    AS $$
    -- One branch per status, each matching a partial index's predicate
    -- exactly (status IN (...) would match neither and read the history).
    SELECT 'delivered'::text, c.type, count(*), min(c.created_at)
    FROM public.gateway_commands c WHERE c.status = 'delivered' GROUP BY c.type
    UNION ALL
    SELECT 'pending'::text, c.type, count(*), min(c.created_at)
    FROM public.gateway_commands c WHERE c.status = 'pending' GROUP BY c.type
    ORDER BY 1, 2
$$;

CREATE FUNCTION public.gateway_commands_due(p_gateways uuid[]) RETURNS SETOF uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
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

CREATE FUNCTION public.gateway_commands_notify() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    PERFORM pg_notify('gateway_commands', NEW.gateway_id::text);
    RETURN NULL;
END $$;

CREATE FUNCTION public.gateway_commands_notify_inserted() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    PERFORM pg_notify('gateway_commands', g.gateway_id::text)
       FROM (SELECT DISTINCT n.gateway_id FROM new_rows n WHERE n.status = 'pending') g;
    RETURN NULL;
END $$;

CREATE FUNCTION public.gateway_commands_sweep(p_backoff interval) RETURNS TABLE(id uuid, gateway_id uuid, status text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
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

CREATE FUNCTION public.gateway_instances_revoked_notify() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    PERFORM pg_notify('gateway_revoked', NEW.id::text);
    RETURN NULL;
END $$;

CREATE FUNCTION public.gateway_instances_void_pending() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    NEW.pending_key_hash := NULL;
    NEW.pending_key_prefix := NULL;
    NEW.pending_key_expires_at := NULL;
    NEW.pending_command_id := NULL;
    RETURN NEW;
END $$;

CREATE FUNCTION public.gateway_provision(p_org bigint, p_serial text, p_token_hash bytea, p_key_hash bytea, p_key_prefix text) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
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

CREATE FUNCTION public.gateways_mark_offline_after(p_silence interval) RETURNS SETOF uuid
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
    AS $$
DECLARE
    silence interval := greatest(coalesce(p_silence, interval '0'), interval '30 seconds');
BEGIN
    RETURN QUERY
        UPDATE public.gateway_instances SET status = 'offline', updated_at = now()
         WHERE status = 'online' AND (last_seen_at IS NULL OR last_seen_at < now() - silence)
        RETURNING gateway_instances.id;
END $$;

CREATE FUNCTION public.policy_distributions_active() RETURNS TABLE(id uuid, organization_id bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
    AS $$
    SELECT d.id, d.organization_id FROM public.policy_distributions d WHERE d.stage IN ('canary', 'full')
$$;

CREATE FUNCTION public.policy_distributions_ready() RETURNS TABLE(id uuid, organization_id bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
    AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT d.id, d.organization_id
          FROM public.policy_distributions d JOIN public.policy_versions v ON v.id = d.version_id
         WHERE d.stage IN ('canary', 'full')
           AND (EXISTS (SELECT 1 FROM public.policy_distribution_targets t
                         WHERE t.distribution_id = d.id AND (d.stage = 'full' OR t.canary) AND t.command_id IS NULL)
                OR NOT EXISTS (SELECT 1 FROM public.policy_distribution_targets t
                                 JOIN public.gateway_commands c ON c.id = t.command_id
                                WHERE t.distribution_id = d.id AND (d.stage = 'full' OR t.canary)
                                  AND c.status IN ('pending', 'delivered'))
                OR (d.stage = 'canary' AND EXISTS (
                        SELECT 1 FROM public.policy_distribution_targets t
                          LEFT JOIN public.gateway_commands c ON c.id = t.command_id
                         WHERE t.distribution_id = d.id AND t.canary AND t.command_id IS NOT NULL
                           AND (c.id IS NULL OR c.status NOT IN ('pending', 'delivered', 'completed'))))
                OR (d.stage = 'full' AND v.requires_restart AND EXISTS (
                        SELECT 1 FROM public.policy_distribution_targets t
                          JOIN public.gateway_commands c ON c.id = t.command_id
                         WHERE t.distribution_id = d.id AND c.status = 'completed' AND t.restart_command_id IS NULL)));
END $$;

CREATE TABLE app.context_keys (
    id text NOT NULL,
    inner_pad bytea NOT NULL,
    outer_pad bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT context_keys_id_check CHECK ((id ~ '^[A-Za-z0-9_-]{1,32}$'::text)),
    CONSTRAINT context_keys_inner_pad_check CHECK ((length(inner_pad) = 64)),
    CONSTRAINT context_keys_outer_pad_check CHECK ((length(outer_pad) = 64))
);

CREATE TABLE monitoring.active_windows (
    id uuid NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    seq bigint NOT NULL,
    agent_uid text NOT NULL,
    computer_uid text NOT NULL,
    user_sid text NOT NULL,
    window_title text,
    process_name text,
    url text,
    datetime timestamp with time zone NOT NULL,
    duration_seconds integer,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (datetime);

CREATE TABLE monitoring.activity_day_usage (
    organization_id bigint NOT NULL,
    user_sid text NOT NULL,
    day date NOT NULL,
    kind text NOT NULL,
    process_name text DEFAULT ''::text NOT NULL,
    host text DEFAULT ''::text NOT NULL,
    seconds bigint NOT NULL,
    events bigint NOT NULL,
    CONSTRAINT activity_day_usage_events_check CHECK ((events >= 0)),
    CONSTRAINT activity_day_usage_kind_check CHECK ((kind = ANY (ARRAY['window'::text, 'site'::text]))),
    CONSTRAINT activity_day_usage_seconds_check CHECK ((seconds >= 0))
);

CREATE TABLE monitoring.activity_days (
    organization_id bigint NOT NULL,
    user_sid text NOT NULL,
    day date NOT NULL,
    time_zone text NOT NULL,
    active_minutes bytea NOT NULL,
    first_at timestamp with time zone,
    last_at timestamp with time zone,
    computed_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT activity_days_active_minutes_check CHECK (((length(active_minutes) >= 1) AND (length(active_minutes) <= 200)))
);

CREATE TABLE monitoring.activity_dirty (
    organization_id bigint NOT NULL,
    user_sid text NOT NULL,
    hour timestamp with time zone NOT NULL
);

CREATE TABLE monitoring.device_events (
    id uuid NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    seq bigint NOT NULL,
    device_id bigint,
    device_serial text NOT NULL,
    datetime timestamp with time zone NOT NULL,
    employee_number text,
    card_number text,
    door integer,
    major_code integer NOT NULL,
    minor_code integer NOT NULL,
    verify_mode text,
    direction text,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (datetime);

CREATE TABLE monitoring.maintainer_policy_runs (
    kind text NOT NULL,
    table_name text NOT NULL,
    last_run_at timestamp with time zone NOT NULL,
    runs bigint NOT NULL,
    chunks bigint NOT NULL,
    CONSTRAINT maintainer_policy_runs_kind_check CHECK ((kind = ANY (ARRAY['retention'::text, 'compression'::text])))
);

CREATE TABLE monitoring.retention (
    table_name text NOT NULL,
    days integer NOT NULL,
    CONSTRAINT retention_days_check CHECK ((days > 0))
);

CREATE TABLE public.organizations (
    id bigint NOT NULL,
    name text NOT NULL,
    slug text NOT NULL,
    settings jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    enrolment_secret_hash bytea,
    enrolment_secret_rotated_at timestamp with time zone,
    row_version bigint DEFAULT 1 NOT NULL,
    time_zone text DEFAULT 'UTC'::text NOT NULL,
    report_policy_id bigint,
    CONSTRAINT organizations_enrolment_secret_hash_check CHECK ((length(enrolment_secret_hash) = 32)),
    CONSTRAINT organizations_name_check CHECK (((length(name) >= 1) AND (length(name) <= 255))),
    CONSTRAINT organizations_slug_check CHECK ((slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'::text))
);

ALTER TABLE ONLY public.organizations FORCE ROW LEVEL SECURITY;

CREATE TABLE public.retention_policies (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id bigint,
    resource_type text NOT NULL,
    retention_days integer NOT NULL,
    action text DEFAULT 'delete'::text NOT NULL,
    is_active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    row_version bigint DEFAULT 1 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT retention_policies_action_check CHECK ((action = ANY (ARRAY['delete'::text, 'archive'::text]))),
    CONSTRAINT retention_policies_resource_type_check CHECK (((length(resource_type) >= 1) AND (length(resource_type) <= 100))),
    CONSTRAINT retention_policies_retention_days_check CHECK ((retention_days > 0))
);

ALTER TABLE ONLY public.retention_policies FORCE ROW LEVEL SECURITY;

CREATE VIEW monitoring.retention_effective AS
 SELECT o.id AS organization_id,
    r.table_name,
    LEAST(COALESCE(own.retention_days, def.retention_days, r.days), r.days) AS days,
    COALESCE(own.action, def.action, 'delete'::text) AS action,
    ((COALESCE(own.retention_days, def.retention_days, r.days) < r.days) OR (COALESCE(own.action, def.action, 'delete'::text) = 'archive'::text)) AS row_by_row
   FROM (((public.organizations o
     CROSS JOIN monitoring.retention r)
     LEFT JOIN LATERAL ( SELECT p.retention_days,
            p.action
           FROM public.retention_policies p
          WHERE ((p.organization_id = o.id) AND (p.resource_type = r.table_name) AND p.is_active)
          ORDER BY p.retention_days, (p.action = 'archive'::text) DESC, p.created_at, p.id
         LIMIT 1) own ON (true))
     LEFT JOIN LATERAL ( SELECT p.retention_days,
            p.action
           FROM public.retention_policies p
          WHERE ((p.organization_id IS NULL) AND (p.resource_type = r.table_name) AND p.is_active)
          ORDER BY p.retention_days, (p.action = 'archive'::text) DESC, p.created_at, p.id
         LIMIT 1) def ON (true));

CREATE TABLE monitoring.retention_runs (
    id bigint NOT NULL,
    started_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    finished_at timestamp with time zone,
    dry_run boolean NOT NULL,
    status text NOT NULL,
    rows jsonb DEFAULT '{}'::jsonb NOT NULL,
    files bigint DEFAULT 0 NOT NULL,
    bytes bigint DEFAULT 0 NOT NULL,
    archived integer DEFAULT 0 NOT NULL,
    error text,
    CONSTRAINT retention_runs_check CHECK (((status = 'running'::text) = (finished_at IS NULL))),
    CONSTRAINT retention_runs_error_check CHECK ((length(error) <= 2000)),
    CONSTRAINT retention_runs_status_check CHECK ((status = ANY (ARRAY['running'::text, 'succeeded'::text, 'failed'::text, 'skipped'::text])))
);

ALTER TABLE monitoring.retention_runs ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME monitoring.retention_runs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE monitoring.screenshots (
    id uuid NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    seq bigint NOT NULL,
    agent_uid text NOT NULL,
    computer_uid text NOT NULL,
    user_sid text NOT NULL,
    file_path text NOT NULL,
    file_size bigint,
    sha256 text,
    datetime timestamp with time zone NOT NULL,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (datetime);

CREATE TABLE monitoring.user_sessions (
    id uuid NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    seq bigint NOT NULL,
    agent_uid text NOT NULL,
    computer_uid text NOT NULL,
    user_sid text NOT NULL,
    session_type text NOT NULL,
    datetime timestamp with time zone NOT NULL,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (datetime);

CREATE TABLE monitoring.visited_sites (
    id uuid NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    seq bigint NOT NULL,
    agent_uid text NOT NULL,
    computer_uid text NOT NULL,
    user_sid text NOT NULL,
    url text NOT NULL,
    title text,
    datetime timestamp with time zone NOT NULL,
    duration_seconds integer,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (datetime);

CREATE TABLE monitoring_fallback.active_windows (
    id uuid NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    seq bigint NOT NULL,
    agent_uid text NOT NULL,
    computer_uid text NOT NULL,
    user_sid text NOT NULL,
    window_title text,
    process_name text,
    url text,
    datetime timestamp with time zone NOT NULL,
    duration_seconds integer,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (datetime);

CREATE TABLE monitoring_fallback.device_events (
    id uuid NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    seq bigint NOT NULL,
    device_id bigint,
    device_serial text NOT NULL,
    datetime timestamp with time zone NOT NULL,
    employee_number text,
    card_number text,
    door integer,
    major_code integer NOT NULL,
    minor_code integer NOT NULL,
    verify_mode text,
    direction text,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (datetime);

CREATE TABLE monitoring_fallback.screenshots (
    id uuid NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    seq bigint NOT NULL,
    agent_uid text NOT NULL,
    computer_uid text NOT NULL,
    user_sid text NOT NULL,
    file_path text NOT NULL,
    file_size bigint,
    sha256 text,
    datetime timestamp with time zone NOT NULL,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (datetime);

CREATE TABLE monitoring_fallback.user_sessions (
    id uuid NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    seq bigint NOT NULL,
    agent_uid text NOT NULL,
    computer_uid text NOT NULL,
    user_sid text NOT NULL,
    session_type text NOT NULL,
    datetime timestamp with time zone NOT NULL,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (datetime);

CREATE TABLE monitoring_fallback.visited_sites (
    id uuid NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    seq bigint NOT NULL,
    agent_uid text NOT NULL,
    computer_uid text NOT NULL,
    user_sid text NOT NULL,
    url text NOT NULL,
    title text,
    datetime timestamp with time zone NOT NULL,
    duration_seconds integer,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (datetime);

CREATE VIEW monitoring_read.active_windows WITH (security_barrier='true') AS
 SELECT active_windows.id,
    active_windows.organization_id,
    active_windows.gateway_id,
    active_windows.agent_uid,
    active_windows.computer_uid,
    active_windows.user_sid,
    active_windows.window_title,
    active_windows.process_name,
    active_windows.url,
    active_windows.datetime,
    active_windows.duration_seconds
   FROM monitoring.active_windows
  WHERE (((active_windows.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (active_windows.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))))
UNION ALL
 SELECT f.id,
    f.organization_id,
    f.gateway_id,
    f.agent_uid,
    f.computer_uid,
    f.user_sid,
    f.window_title,
    f.process_name,
    f.url,
    f.datetime,
    f.duration_seconds
   FROM monitoring_fallback.active_windows f
  WHERE (((f.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (f.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))) AND (NOT (EXISTS ( SELECT 1
           FROM monitoring.active_windows m
          WHERE ((m.organization_id = f.organization_id) AND (m.id = f.id) AND (m.datetime = f.datetime))))));

CREATE VIEW monitoring_read.activity_day_usage WITH (security_barrier='true') AS
 SELECT activity_day_usage.organization_id,
    activity_day_usage.user_sid,
    activity_day_usage.day,
    activity_day_usage.kind,
    activity_day_usage.process_name,
    activity_day_usage.host,
    activity_day_usage.seconds,
    activity_day_usage.events
   FROM monitoring.activity_day_usage
  WHERE (((activity_day_usage.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (activity_day_usage.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))));

CREATE VIEW monitoring_read.activity_days WITH (security_barrier='true') AS
 SELECT activity_days.organization_id,
    activity_days.user_sid,
    activity_days.day,
    activity_days.time_zone,
    activity_days.active_minutes,
    activity_days.first_at,
    activity_days.last_at,
    activity_days.computed_at
   FROM monitoring.activity_days
  WHERE (((activity_days.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (activity_days.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))));

CREATE VIEW monitoring_read.activity_dirty WITH (security_barrier='true') AS
 SELECT activity_dirty.organization_id,
    activity_dirty.user_sid,
    activity_dirty.hour
   FROM monitoring.activity_dirty
  WHERE (((activity_dirty.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (activity_dirty.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))));

CREATE VIEW monitoring_read.activity_hourly WITH (security_barrier='true') AS
 SELECT date_trunc('hour'::text, active_windows.datetime, 'UTC'::text) AS bucket,
    active_windows.organization_id,
    active_windows.user_sid,
    active_windows.computer_uid,
    count(*) AS window_events,
    COALESCE(sum(active_windows.duration_seconds), (0)::bigint) AS active_seconds
   FROM monitoring_read.active_windows
  WHERE (((active_windows.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (active_windows.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))))
  GROUP BY (date_trunc('hour'::text, active_windows.datetime, 'UTC'::text)), active_windows.organization_id, active_windows.user_sid, active_windows.computer_uid;

CREATE VIEW monitoring_read.device_events WITH (security_barrier='true') AS
 SELECT device_events.id,
    device_events.organization_id,
    device_events.gateway_id,
    device_events.device_id,
    device_events.device_serial,
    device_events.datetime,
    device_events.employee_number,
    device_events.card_number,
    device_events.door,
    device_events.major_code,
    device_events.minor_code,
    device_events.verify_mode,
    device_events.direction
   FROM monitoring.device_events
  WHERE (((device_events.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (device_events.employee_number IN ( SELECT unnest(( SELECT app.scope_identities('employee_number'::text) AS scope_identities)) AS unnest)) OR (device_events.card_number IN ( SELECT unnest(( SELECT app.scope_identities('card_number'::text) AS scope_identities)) AS unnest))))
UNION ALL
 SELECT f.id,
    f.organization_id,
    f.gateway_id,
    f.device_id,
    f.device_serial,
    f.datetime,
    f.employee_number,
    f.card_number,
    f.door,
    f.major_code,
    f.minor_code,
    f.verify_mode,
    f.direction
   FROM monitoring_fallback.device_events f
  WHERE (((f.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (f.employee_number IN ( SELECT unnest(( SELECT app.scope_identities('employee_number'::text) AS scope_identities)) AS unnest)) OR (f.card_number IN ( SELECT unnest(( SELECT app.scope_identities('card_number'::text) AS scope_identities)) AS unnest))) AND (NOT (EXISTS ( SELECT 1
           FROM monitoring.device_events m
          WHERE ((m.organization_id = f.organization_id) AND (m.id = f.id) AND (m.datetime = f.datetime))))));

CREATE VIEW monitoring_read.screenshots WITH (security_barrier='true') AS
 SELECT screenshots.id,
    screenshots.organization_id,
    screenshots.gateway_id,
    screenshots.agent_uid,
    screenshots.computer_uid,
    screenshots.user_sid,
    screenshots.file_path,
    screenshots.file_size,
    screenshots.sha256,
    screenshots.datetime
   FROM monitoring.screenshots
  WHERE (((screenshots.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (screenshots.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))))
UNION ALL
 SELECT f.id,
    f.organization_id,
    f.gateway_id,
    f.agent_uid,
    f.computer_uid,
    f.user_sid,
    f.file_path,
    f.file_size,
    f.sha256,
    f.datetime
   FROM monitoring_fallback.screenshots f
  WHERE (((f.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (f.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))) AND (NOT (EXISTS ( SELECT 1
           FROM monitoring.screenshots m
          WHERE ((m.organization_id = f.organization_id) AND (m.id = f.id) AND (m.datetime = f.datetime))))));

CREATE VIEW monitoring_read.user_sessions WITH (security_barrier='true') AS
 SELECT user_sessions.id,
    user_sessions.organization_id,
    user_sessions.gateway_id,
    user_sessions.agent_uid,
    user_sessions.computer_uid,
    user_sessions.user_sid,
    user_sessions.session_type,
    user_sessions.datetime
   FROM monitoring.user_sessions
  WHERE (((user_sessions.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (user_sessions.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))))
UNION ALL
 SELECT f.id,
    f.organization_id,
    f.gateway_id,
    f.agent_uid,
    f.computer_uid,
    f.user_sid,
    f.session_type,
    f.datetime
   FROM monitoring_fallback.user_sessions f
  WHERE (((f.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (f.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))) AND (NOT (EXISTS ( SELECT 1
           FROM monitoring.user_sessions m
          WHERE ((m.organization_id = f.organization_id) AND (m.id = f.id) AND (m.datetime = f.datetime))))));

CREATE VIEW monitoring_read.visited_sites WITH (security_barrier='true') AS
 SELECT visited_sites.id,
    visited_sites.organization_id,
    visited_sites.gateway_id,
    visited_sites.agent_uid,
    visited_sites.computer_uid,
    visited_sites.user_sid,
    visited_sites.url,
    visited_sites.title,
    visited_sites.datetime,
    visited_sites.duration_seconds
   FROM monitoring.visited_sites
  WHERE (((visited_sites.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (visited_sites.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))))
UNION ALL
 SELECT f.id,
    f.organization_id,
    f.gateway_id,
    f.agent_uid,
    f.computer_uid,
    f.user_sid,
    f.url,
    f.title,
    f.datetime,
    f.duration_seconds
   FROM monitoring_fallback.visited_sites f
  WHERE (((f.organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)) AND (( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (f.user_sid IN ( SELECT unnest(( SELECT app.scope_identities('windows_sid'::text) AS scope_identities)) AS unnest))) AND (NOT (EXISTS ( SELECT 1
           FROM monitoring.visited_sites m
          WHERE ((m.organization_id = f.organization_id) AND (m.id = f.id) AND (m.datetime = f.datetime))))));

CREATE TABLE public.agent_instances (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    agent_uid text NOT NULL,
    computer_name text,
    status text DEFAULT 'offline'::text NOT NULL,
    last_seen_at timestamp with time zone,
    policy_version text,
    version text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    enrolled_at timestamp with time zone,
    revoked_at timestamp with time zone,
    CONSTRAINT agent_instances_agent_uid_check CHECK (((length(agent_uid) >= 1) AND (length(agent_uid) <= 255))),
    CONSTRAINT agent_instances_computer_name_check CHECK ((length(computer_name) <= 255)),
    CONSTRAINT agent_instances_policy_version_check CHECK ((length(policy_version) <= 50)),
    CONSTRAINT agent_instances_status_check CHECK ((status = ANY (ARRAY['online'::text, 'offline'::text]))),
    CONSTRAINT agent_instances_version_check CHECK ((length(version) <= 50))
);

ALTER TABLE ONLY public.agent_instances FORCE ROW LEVEL SECURITY;

CREATE TABLE public.audit_log (
    id bigint NOT NULL,
    organization_id bigint,
    actor_user_id bigint,
    actor text NOT NULL,
    action text NOT NULL,
    resource_type text NOT NULL,
    resource_id text,
    outcome text DEFAULT 'allowed'::text NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT audit_log_action_check CHECK ((length(action) <= 100)),
    CONSTRAINT audit_log_actor_check CHECK ((length(actor) <= 255)),
    CONSTRAINT audit_log_outcome_check CHECK ((outcome = ANY (ARRAY['allowed'::text, 'denied'::text]))),
    CONSTRAINT audit_log_resource_id_check CHECK ((length(resource_id) <= 255)),
    CONSTRAINT audit_log_resource_type_check CHECK ((length(resource_type) <= 100))
);

ALTER TABLE ONLY public.audit_log FORCE ROW LEVEL SECURITY;

ALTER TABLE public.audit_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.auth_lockouts (
    user_id bigint NOT NULL,
    organization_id bigint,
    failed_logins integer DEFAULT 0 NOT NULL,
    lockouts integer DEFAULT 0 NOT NULL,
    locked_until timestamp with time zone,
    last_failed_at timestamp with time zone,
    CONSTRAINT auth_lockouts_failed_logins_check CHECK ((failed_logins >= 0)),
    CONSTRAINT auth_lockouts_lockouts_check CHECK ((lockouts >= 0))
);

ALTER TABLE ONLY public.auth_lockouts FORCE ROW LEVEL SECURITY;

CREATE TABLE public.auth_refresh_tokens (
    token_hash bytea NOT NULL,
    session_id uuid NOT NULL,
    organization_id bigint,
    issued_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    spent_at timestamp with time zone,
    CONSTRAINT auth_refresh_tokens_token_hash_check CHECK ((length(token_hash) = 32))
);

ALTER TABLE ONLY public.auth_refresh_tokens FORCE ROW LEVEL SECURITY;

CREATE TABLE public.auth_sessions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id bigint NOT NULL,
    organization_id bigint,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone,
    revoked_reason text,
    client_address inet,
    user_agent text,
    CONSTRAINT auth_sessions_check CHECK (((revoked_at IS NULL) = (revoked_reason IS NULL))),
    CONSTRAINT auth_sessions_revoked_reason_check CHECK ((revoked_reason = ANY (ARRAY['logout'::text, 'logout_everywhere'::text, 'password_change'::text, 'reuse'::text, 'disabled'::text, 'user_changed'::text, 'password_reset'::text]))),
    CONSTRAINT auth_sessions_user_agent_check CHECK ((length(user_agent) <= 512))
);

ALTER TABLE ONLY public.auth_sessions FORCE ROW LEVEL SECURITY;

CREATE TABLE public.dashboard_events (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    kind text NOT NULL,
    subject text NOT NULL,
    data jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT dashboard_events_kind_check CHECK ((kind = ANY (ARRAY['gateway.status'::text, 'command.status'::text, 'policy_distribution.progress'::text]))),
    CONSTRAINT dashboard_events_subject_check CHECK ((length(subject) <= 64))
);

ALTER TABLE ONLY public.dashboard_events FORCE ROW LEVEL SECURITY;

ALTER TABLE public.dashboard_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.dashboard_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.dashboard_events_staged (
    seq bigint NOT NULL,
    organization_id bigint NOT NULL,
    kind text,
    subject text NOT NULL,
    data jsonb DEFAULT '{}'::jsonb NOT NULL,
    command_id uuid,
    distribution_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT dashboard_events_staged_kind_check CHECK ((kind = ANY (ARRAY['gateway.status'::text, 'command.status'::text])))
);

ALTER TABLE ONLY public.dashboard_events_staged FORCE ROW LEVEL SECURITY;

ALTER TABLE public.dashboard_events_staged ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.dashboard_events_staged_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.departments (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    parent_id bigint,
    name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    row_version bigint DEFAULT 1 NOT NULL,
    CONSTRAINT departments_name_check CHECK (((length(name) >= 1) AND (length(name) <= 255)))
);

ALTER TABLE ONLY public.departments FORCE ROW LEVEL SECURITY;

ALTER TABLE public.departments ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.departments_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.device_adapters (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    type text NOT NULL,
    vendor text NOT NULL,
    version text NOT NULL,
    config_schema jsonb NOT NULL,
    is_active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT device_adapters_type_check CHECK (((length(type) >= 1) AND (length(type) <= 100))),
    CONSTRAINT device_adapters_vendor_check CHECK (((length(vendor) >= 1) AND (length(vendor) <= 100))),
    CONSTRAINT device_adapters_version_check CHECK (((length(version) >= 1) AND (length(version) <= 50)))
);

CREATE TABLE public.device_commands (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id bigint NOT NULL,
    device_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    adapter_type text NOT NULL,
    command_type text NOT NULL,
    payload jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    response jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    gateway_command_id uuid,
    error text,
    created_by text,
    delivered_at timestamp with time zone,
    expires_at timestamp with time zone,
    CONSTRAINT device_commands_adapter_type_check CHECK (((length(adapter_type) >= 1) AND (length(adapter_type) <= 100))),
    CONSTRAINT device_commands_command_type_check CHECK (((length(command_type) >= 1) AND (length(command_type) <= 100))),
    CONSTRAINT device_commands_created_by_check CHECK ((length(created_by) <= 255)),
    CONSTRAINT device_commands_error_check CHECK ((length(error) <= 2000)),
    CONSTRAINT device_commands_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'delivered'::text, 'completed'::text, 'failed'::text, 'expired'::text, 'cancelled'::text])))
);

ALTER TABLE ONLY public.device_commands FORCE ROW LEVEL SECURITY;

CREATE TABLE public.devices (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid,
    name text NOT NULL,
    adapter_type text NOT NULL,
    host text,
    port integer,
    serial text,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    status text DEFAULT 'unknown'::text NOT NULL,
    last_seen_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    row_version bigint DEFAULT 1 NOT NULL,
    CONSTRAINT devices_adapter_type_check CHECK (((length(adapter_type) >= 1) AND (length(adapter_type) <= 100))),
    CONSTRAINT devices_host_check CHECK ((length(host) <= 255)),
    CONSTRAINT devices_name_check CHECK (((length(name) >= 1) AND (length(name) <= 255))),
    CONSTRAINT devices_port_check CHECK (((port >= 1) AND (port <= 65535))),
    CONSTRAINT devices_serial_check CHECK ((length(serial) <= 255)),
    CONSTRAINT devices_status_check CHECK ((status = ANY (ARRAY['unknown'::text, 'online'::text, 'offline'::text, 'error'::text, 'auth_failed'::text])))
);

ALTER TABLE ONLY public.devices FORCE ROW LEVEL SECURITY;

ALTER TABLE public.devices ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.devices_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE SEQUENCE public.devices_update_version
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

CREATE TABLE public.employee_identities (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    employee_id bigint NOT NULL,
    kind text NOT NULL,
    value text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT employee_identities_kind_check CHECK ((kind = ANY (ARRAY['windows_sid'::text, 'computer'::text, 'card_number'::text, 'employee_number'::text]))),
    CONSTRAINT employee_identities_value_check CHECK (((length(value) >= 1) AND (length(value) <= 255)))
);

ALTER TABLE ONLY public.employee_identities FORCE ROW LEVEL SECURITY;

ALTER TABLE public.employee_identities ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.employee_identities_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.employees (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    department_id bigint,
    employee_number text NOT NULL,
    first_name text NOT NULL,
    last_name text NOT NULL,
    email text,
    "position" text,
    status text DEFAULT 'active'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    row_version bigint DEFAULT 1 NOT NULL,
    CONSTRAINT employees_email_check CHECK ((length(email) <= 255)),
    CONSTRAINT employees_employee_number_check CHECK (((length(employee_number) >= 1) AND (length(employee_number) <= 64))),
    CONSTRAINT employees_first_name_check CHECK ((length(first_name) <= 255)),
    CONSTRAINT employees_last_name_check CHECK ((length(last_name) <= 255)),
    CONSTRAINT employees_position_check CHECK ((length("position") <= 255)),
    CONSTRAINT employees_status_check CHECK ((status = ANY (ARRAY['active'::text, 'inactive'::text])))
);

ALTER TABLE ONLY public.employees FORCE ROW LEVEL SECURITY;

ALTER TABLE public.employees ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.employees_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.gateway_commands (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 3 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    ack_deadline timestamp with time zone,
    delivered_at timestamp with time zone,
    ack_at timestamp with time zone,
    completed_at timestamp with time zone,
    result jsonb,
    error text,
    expires_at timestamp with time zone DEFAULT (now() + '24:00:00'::interval) NOT NULL,
    created_by text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    received_at timestamp with time zone,
    trace_parent text,
    CONSTRAINT gateway_commands_attempts_check CHECK ((attempts >= 0)),
    CONSTRAINT gateway_commands_created_by_check CHECK ((length(created_by) <= 255)),
    CONSTRAINT gateway_commands_max_attempts_check CHECK ((max_attempts > 0)),
    CONSTRAINT gateway_commands_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'delivered'::text, 'completed'::text, 'failed'::text, 'expired'::text, 'cancelled'::text]))),
    CONSTRAINT gateway_commands_trace_parent_length CHECK ((length(trace_parent) <= 128)),
    CONSTRAINT gateway_commands_type_check CHECK ((type = ANY (ARRAY['policy_update'::text, 'restart_agent'::text, 'device_command'::text, 'rotate_api_key'::text, 'replay_dead_letters'::text, 'revoke_agent'::text, 'devices_update'::text])))
);

ALTER TABLE ONLY public.gateway_commands FORCE ROW LEVEL SECURITY;

CREATE TABLE public.gateway_drop_reports (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    reason text NOT NULL,
    class text NOT NULL,
    count bigint NOT NULL,
    first_at timestamp with time zone,
    last_at timestamp with time zone,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT gateway_drop_reports_class_check CHECK ((length(class) <= 32)),
    CONSTRAINT gateway_drop_reports_count_check CHECK ((count > 0)),
    CONSTRAINT gateway_drop_reports_reason_check CHECK ((length(reason) <= 64))
);

ALTER TABLE ONLY public.gateway_drop_reports FORCE ROW LEVEL SECURITY;

ALTER TABLE public.gateway_drop_reports ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.gateway_drop_reports_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.gateway_ingest_stats (
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    max_seq bigint DEFAULT 0 NOT NULL,
    events_accepted bigint DEFAULT 0 NOT NULL,
    events_dropped bigint DEFAULT 0 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    events_resent bigint DEFAULT 0 NOT NULL
);

ALTER TABLE ONLY public.gateway_ingest_stats FORCE ROW LEVEL SECURITY;

CREATE TABLE public.gateway_instances (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id bigint NOT NULL,
    serial text NOT NULL,
    name text,
    api_key_hash bytea,
    api_key_prefix text,
    status text DEFAULT 'provisioning'::text NOT NULL,
    last_seen_at timestamp with time zone,
    version text,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    pending_key_hash bytea,
    pending_key_prefix text,
    pending_key_expires_at timestamp with time zone,
    pending_command_id uuid,
    key_rotated_at timestamp with time zone,
    key_command_id uuid,
    row_version bigint DEFAULT 1 NOT NULL,
    CONSTRAINT gateway_instances_api_key_hash_check CHECK ((length(api_key_hash) = 32)),
    CONSTRAINT gateway_instances_api_key_prefix_check CHECK ((length(api_key_prefix) <= 16)),
    CONSTRAINT gateway_instances_name_check CHECK ((length(name) <= 255)),
    CONSTRAINT gateway_instances_pending_key CHECK (((pending_key_hash IS NULL) = (pending_key_expires_at IS NULL))),
    CONSTRAINT gateway_instances_pending_key_hash_check CHECK ((length(pending_key_hash) = 32)),
    CONSTRAINT gateway_instances_pending_key_prefix_check CHECK ((length(pending_key_prefix) <= 16)),
    CONSTRAINT gateway_instances_serial_check CHECK (((length(serial) >= 1) AND (length(serial) <= 255))),
    CONSTRAINT gateway_instances_status_check CHECK ((status = ANY (ARRAY['provisioning'::text, 'online'::text, 'offline'::text, 'revoked'::text]))),
    CONSTRAINT gateway_instances_version_check CHECK ((length(version) <= 50))
);

ALTER TABLE ONLY public.gateway_instances FORCE ROW LEVEL SECURITY;

CREATE TABLE public.gateway_resent_seqs (
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    seq bigint NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.gateway_resent_seqs FORCE ROW LEVEL SECURITY;

CREATE TABLE public.gateway_status_snapshots (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    "timestamp" timestamp with time zone NOT NULL,
    cpu_usage numeric(5,2),
    memory_usage numeric(5,2),
    disk_usage numeric(5,2),
    buffer_usage numeric(5,2),
    queue_depth integer,
    connected_agents integer,
    versions jsonb DEFAULT '{}'::jsonb NOT NULL,
    network_status jsonb DEFAULT '{}'::jsonb NOT NULL
);

ALTER TABLE ONLY public.gateway_status_snapshots FORCE ROW LEVEL SECURITY;

CREATE TABLE public.ingest_batches (
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    idempotency_key uuid NOT NULL,
    endpoint text NOT NULL,
    request_hash bytea NOT NULL,
    status text NOT NULL,
    locked_until timestamp with time zone NOT NULL,
    response_status integer,
    response_body jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    CONSTRAINT ingest_batches_endpoint_check CHECK ((endpoint = ANY (ARRAY['logs'::text, 'screenshots'::text, 'device-events'::text]))),
    CONSTRAINT ingest_batches_request_hash_check CHECK ((length(request_hash) = 32)),
    CONSTRAINT ingest_batches_status_check CHECK ((status = ANY (ARRAY['in_flight'::text, 'done'::text])))
);

ALTER TABLE ONLY public.ingest_batches FORCE ROW LEVEL SECURITY;

CREATE TABLE public.ingest_store_accounting (
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    idempotency_key uuid NOT NULL,
    accepted bigint NOT NULL,
    resent bigint[] DEFAULT '{}'::bigint[] NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ingest_store_accounting_accepted_check CHECK ((accepted >= 0))
);

ALTER TABLE ONLY public.ingest_store_accounting FORCE ROW LEVEL SECURITY;

ALTER TABLE public.organizations ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.organizations_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.policies (
    id bigint NOT NULL,
    organization_id bigint NOT NULL,
    name text NOT NULL,
    description text,
    content jsonb DEFAULT '{}'::jsonb NOT NULL,
    current_version text,
    created_by bigint,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    row_version bigint DEFAULT 1 NOT NULL,
    CONSTRAINT policies_current_version_check CHECK ((length(current_version) <= 50)),
    CONSTRAINT policies_description_check CHECK ((length(description) <= 2000)),
    CONSTRAINT policies_name_check CHECK (((length(name) >= 1) AND (length(name) <= 255)))
);

ALTER TABLE ONLY public.policies FORCE ROW LEVEL SECURITY;

ALTER TABLE public.policies ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.policies_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.policy_changes (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id bigint NOT NULL,
    policy_id bigint NOT NULL,
    version_id uuid,
    changed_by bigint,
    changeset jsonb NOT NULL,
    change_type text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT policy_changes_change_type_check CHECK ((change_type = ANY (ARRAY['create'::text, 'update'::text, 'delete'::text, 'release'::text, 'rollback'::text])))
);

ALTER TABLE ONLY public.policy_changes FORCE ROW LEVEL SECURITY;

CREATE TABLE public.policy_distribution_targets (
    distribution_id uuid NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    canary boolean DEFAULT false NOT NULL,
    command_id uuid,
    restart_command_id uuid
);

ALTER TABLE ONLY public.policy_distribution_targets FORCE ROW LEVEL SECURITY;

CREATE TABLE public.policy_distributions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id bigint NOT NULL,
    policy_id bigint NOT NULL,
    version_id uuid NOT NULL,
    canary_percent integer DEFAULT 0 NOT NULL,
    stage text DEFAULT 'canary'::text NOT NULL,
    created_by text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    trace_parent text,
    CONSTRAINT policy_distributions_canary_percent_check CHECK (((canary_percent >= 0) AND (canary_percent <= 100))),
    CONSTRAINT policy_distributions_created_by_check CHECK ((length(created_by) <= 255)),
    CONSTRAINT policy_distributions_stage_check CHECK ((stage = ANY (ARRAY['canary'::text, 'full'::text, 'done'::text, 'halted'::text]))),
    CONSTRAINT policy_distributions_trace_parent_length CHECK ((length(trace_parent) <= 128))
);

ALTER TABLE ONLY public.policy_distributions FORCE ROW LEVEL SECURITY;

CREATE TABLE public.policy_versions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id bigint NOT NULL,
    policy_id bigint NOT NULL,
    version text NOT NULL,
    content jsonb NOT NULL,
    checksum text NOT NULL,
    requires_restart boolean DEFAULT false NOT NULL,
    released_at timestamp with time zone DEFAULT now() NOT NULL,
    released_by bigint,
    CONSTRAINT policy_versions_checksum_check CHECK ((checksum ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT policy_versions_version_check CHECK (((length(version) >= 1) AND (length(version) <= 50)))
);

ALTER TABLE ONLY public.policy_versions FORCE ROW LEVEL SECURITY;

CREATE TABLE public.provisioning_tokens (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organization_id bigint NOT NULL,
    gateway_id uuid NOT NULL,
    token_hash bytea NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone,
    created_by text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT provisioning_tokens_created_by_check CHECK ((length(created_by) <= 255)),
    CONSTRAINT provisioning_tokens_token_hash_check CHECK ((length(token_hash) = 32))
);

ALTER TABLE ONLY public.provisioning_tokens FORCE ROW LEVEL SECURITY;

CREATE TABLE public.schema_migrations (
    id integer NOT NULL,
    version_id bigint NOT NULL,
    is_applied boolean NOT NULL,
    tstamp timestamp without time zone DEFAULT now() NOT NULL
);

ALTER TABLE public.schema_migrations ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.schema_migrations_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.users (
    id bigint NOT NULL,
    organization_id bigint,
    email text NOT NULL,
    password_hash text NOT NULL,
    role text NOT NULL,
    department_id bigint,
    employee_id bigint,
    is_active boolean DEFAULT true NOT NULL,
    last_login_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    row_version bigint DEFAULT 1 NOT NULL,
    language text,
    CONSTRAINT users_check CHECK (((role = 'ADMIN'::text) = (organization_id IS NULL))),
    CONSTRAINT users_email_check CHECK ((((length(email) >= 3) AND (length(email) <= 255)) AND (email = lower(email)))),
    CONSTRAINT users_language_check CHECK ((language = ANY (ARRAY['en'::text, 'ru'::text, 'uz'::text]))),
    CONSTRAINT users_role_check CHECK ((role = ANY (ARRAY['ADMIN'::text, 'ORG_ADMIN'::text, 'HR'::text, 'DEPARTMENT_LEAD'::text, 'EMPLOYEE'::text])))
);

ALTER TABLE ONLY public.users FORCE ROW LEVEL SECURITY;

ALTER TABLE public.users ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.users_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

ALTER TABLE ONLY app.context_keys
    ADD CONSTRAINT context_keys_pkey PRIMARY KEY (id);

ALTER TABLE ONLY monitoring.active_windows
    ADD CONSTRAINT active_windows_pkey PRIMARY KEY (organization_id, id, datetime);

ALTER TABLE ONLY monitoring.activity_day_usage
    ADD CONSTRAINT activity_day_usage_pkey PRIMARY KEY (organization_id, user_sid, day, kind, process_name, host);

ALTER TABLE ONLY monitoring.activity_days
    ADD CONSTRAINT activity_days_pkey PRIMARY KEY (organization_id, user_sid, day);

ALTER TABLE ONLY monitoring.activity_dirty
    ADD CONSTRAINT activity_dirty_pkey PRIMARY KEY (organization_id, user_sid, hour);

ALTER TABLE ONLY monitoring.device_events
    ADD CONSTRAINT device_events_pkey PRIMARY KEY (organization_id, id, datetime);

ALTER TABLE ONLY monitoring.maintainer_policy_runs
    ADD CONSTRAINT maintainer_policy_runs_pkey PRIMARY KEY (kind, table_name);

ALTER TABLE ONLY monitoring.retention
    ADD CONSTRAINT retention_pkey PRIMARY KEY (table_name);

ALTER TABLE ONLY monitoring.retention_runs
    ADD CONSTRAINT retention_runs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY monitoring.screenshots
    ADD CONSTRAINT screenshots_pkey PRIMARY KEY (organization_id, id, datetime);

ALTER TABLE ONLY monitoring.user_sessions
    ADD CONSTRAINT user_sessions_pkey PRIMARY KEY (organization_id, id, datetime);

ALTER TABLE ONLY monitoring.visited_sites
    ADD CONSTRAINT visited_sites_pkey PRIMARY KEY (organization_id, id, datetime);

ALTER TABLE ONLY monitoring_fallback.active_windows
    ADD CONSTRAINT active_windows_pkey PRIMARY KEY (organization_id, id, datetime);

ALTER TABLE ONLY monitoring_fallback.device_events
    ADD CONSTRAINT device_events_pkey PRIMARY KEY (organization_id, id, datetime);

ALTER TABLE ONLY monitoring_fallback.screenshots
    ADD CONSTRAINT screenshots_pkey PRIMARY KEY (organization_id, id, datetime);

ALTER TABLE ONLY monitoring_fallback.user_sessions
    ADD CONSTRAINT user_sessions_pkey PRIMARY KEY (organization_id, id, datetime);

ALTER TABLE ONLY monitoring_fallback.visited_sites
    ADD CONSTRAINT visited_sites_pkey PRIMARY KEY (organization_id, id, datetime);

ALTER TABLE ONLY public.agent_instances
    ADD CONSTRAINT agent_instances_gateway_id_agent_uid_key UNIQUE (gateway_id, agent_uid);

ALTER TABLE ONLY public.agent_instances
    ADD CONSTRAINT agent_instances_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.auth_lockouts
    ADD CONSTRAINT auth_lockouts_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY public.auth_refresh_tokens
    ADD CONSTRAINT auth_refresh_tokens_pkey PRIMARY KEY (token_hash);

ALTER TABLE ONLY public.auth_sessions
    ADD CONSTRAINT auth_sessions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.dashboard_events
    ADD CONSTRAINT dashboard_events_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.dashboard_events_staged
    ADD CONSTRAINT dashboard_events_staged_pkey PRIMARY KEY (seq);

ALTER TABLE ONLY public.departments
    ADD CONSTRAINT departments_organization_id_id_key UNIQUE (organization_id, id);

ALTER TABLE ONLY public.departments
    ADD CONSTRAINT departments_organization_id_name_key UNIQUE (organization_id, name);

ALTER TABLE ONLY public.departments
    ADD CONSTRAINT departments_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.device_adapters
    ADD CONSTRAINT device_adapters_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.device_adapters
    ADD CONSTRAINT device_adapters_type_version_key UNIQUE (type, version);

ALTER TABLE ONLY public.device_commands
    ADD CONSTRAINT device_commands_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_organization_id_id_key UNIQUE (organization_id, id);

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.employee_identities
    ADD CONSTRAINT employee_identities_organization_id_kind_value_key UNIQUE (organization_id, kind, value);

ALTER TABLE ONLY public.employee_identities
    ADD CONSTRAINT employee_identities_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.employees
    ADD CONSTRAINT employees_organization_id_employee_number_key UNIQUE (organization_id, employee_number);

ALTER TABLE ONLY public.employees
    ADD CONSTRAINT employees_organization_id_id_key UNIQUE (organization_id, id);

ALTER TABLE ONLY public.employees
    ADD CONSTRAINT employees_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.gateway_commands
    ADD CONSTRAINT gateway_commands_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.gateway_drop_reports
    ADD CONSTRAINT gateway_drop_reports_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.gateway_ingest_stats
    ADD CONSTRAINT gateway_ingest_stats_pkey PRIMARY KEY (gateway_id);

ALTER TABLE ONLY public.gateway_instances
    ADD CONSTRAINT gateway_instances_api_key_hash_key UNIQUE (api_key_hash);

ALTER TABLE ONLY public.gateway_instances
    ADD CONSTRAINT gateway_instances_organization_id_id_key UNIQUE (organization_id, id);

ALTER TABLE ONLY public.gateway_instances
    ADD CONSTRAINT gateway_instances_organization_id_serial_key UNIQUE (organization_id, serial);

ALTER TABLE ONLY public.gateway_instances
    ADD CONSTRAINT gateway_instances_pending_key_hash_key UNIQUE (pending_key_hash);

ALTER TABLE ONLY public.gateway_instances
    ADD CONSTRAINT gateway_instances_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.gateway_resent_seqs
    ADD CONSTRAINT gateway_resent_seqs_pkey PRIMARY KEY (gateway_id, seq);

ALTER TABLE ONLY public.gateway_status_snapshots
    ADD CONSTRAINT gateway_status_snapshots_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.ingest_batches
    ADD CONSTRAINT ingest_batches_pkey PRIMARY KEY (gateway_id, idempotency_key);

ALTER TABLE ONLY public.ingest_store_accounting
    ADD CONSTRAINT ingest_store_accounting_pkey PRIMARY KEY (gateway_id, idempotency_key);

ALTER TABLE ONLY public.organizations
    ADD CONSTRAINT organizations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.organizations
    ADD CONSTRAINT organizations_slug_key UNIQUE (slug);

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_organization_id_id_key UNIQUE (organization_id, id);

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_organization_id_name_key UNIQUE (organization_id, name);

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.policy_changes
    ADD CONSTRAINT policy_changes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.policy_distribution_targets
    ADD CONSTRAINT policy_distribution_targets_pkey PRIMARY KEY (distribution_id, gateway_id);

ALTER TABLE ONLY public.policy_distributions
    ADD CONSTRAINT policy_distributions_organization_id_id_key UNIQUE (organization_id, id);

ALTER TABLE ONLY public.policy_distributions
    ADD CONSTRAINT policy_distributions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.policy_versions
    ADD CONSTRAINT policy_versions_organization_id_id_key UNIQUE (organization_id, id);

ALTER TABLE ONLY public.policy_versions
    ADD CONSTRAINT policy_versions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.policy_versions
    ADD CONSTRAINT policy_versions_policy_id_version_key UNIQUE (policy_id, version);

ALTER TABLE ONLY public.provisioning_tokens
    ADD CONSTRAINT provisioning_tokens_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.provisioning_tokens
    ADD CONSTRAINT provisioning_tokens_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.retention_policies
    ADD CONSTRAINT retention_policies_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_email_key UNIQUE (email);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_organization_id_id_key UNIQUE (organization_id, id);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

CREATE INDEX active_windows_organization_id_datetime_idx ON ONLY monitoring.active_windows USING btree (organization_id, datetime DESC);

CREATE INDEX active_windows_organization_id_user_sid_datetime_idx ON ONLY monitoring.active_windows USING btree (organization_id, user_sid, datetime);

CREATE INDEX device_events_organization_id_datetime_idx ON ONLY monitoring.device_events USING btree (organization_id, datetime DESC);

CREATE INDEX retention_runs_recent ON monitoring.retention_runs USING btree (started_at DESC);

CREATE INDEX retention_runs_running ON monitoring.retention_runs USING btree (id) WHERE (status = 'running'::text);

CREATE INDEX screenshots_organization_id_datetime_idx ON ONLY monitoring.screenshots USING btree (organization_id, datetime DESC);

CREATE INDEX user_sessions_organization_id_datetime_idx ON ONLY monitoring.user_sessions USING btree (organization_id, datetime DESC);

CREATE INDEX user_sessions_organization_id_user_sid_datetime_idx ON ONLY monitoring.user_sessions USING btree (organization_id, user_sid, datetime);

CREATE INDEX visited_sites_organization_id_datetime_idx ON ONLY monitoring.visited_sites USING btree (organization_id, datetime DESC);

CREATE INDEX visited_sites_organization_id_user_sid_datetime_idx ON ONLY monitoring.visited_sites USING btree (organization_id, user_sid, datetime);

CREATE INDEX active_windows_organization_id_user_sid_datetime_idx ON ONLY monitoring_fallback.active_windows USING btree (organization_id, user_sid, datetime);

CREATE INDEX user_sessions_organization_id_user_sid_datetime_idx ON ONLY monitoring_fallback.user_sessions USING btree (organization_id, user_sid, datetime);

CREATE INDEX visited_sites_organization_id_user_sid_datetime_idx ON ONLY monitoring_fallback.visited_sites USING btree (organization_id, user_sid, datetime);

CREATE INDEX audit_log_org_time ON public.audit_log USING btree (organization_id, created_at DESC);

CREATE INDEX auth_refresh_tokens_session ON public.auth_refresh_tokens USING btree (session_id);

CREATE INDEX auth_sessions_user ON public.auth_sessions USING btree (user_id);

CREATE INDEX dashboard_events_created_at ON public.dashboard_events USING btree (created_at);

CREATE INDEX dashboard_events_subject ON public.dashboard_events USING btree (subject, id);

CREATE INDEX departments_organization_id_parent_id_idx ON public.departments USING btree (organization_id, parent_id);

CREATE INDEX device_commands_device_created ON public.device_commands USING btree (device_id, created_at DESC, id DESC);

CREATE UNIQUE INDEX device_commands_gateway_command ON public.device_commands USING btree (gateway_command_id);

CREATE INDEX employee_identities_organization_id_employee_id_idx ON public.employee_identities USING btree (organization_id, employee_id);

CREATE INDEX employees_created_at_id_idx ON public.employees USING btree (created_at, id);

CREATE INDEX employees_employee_number_id_idx ON public.employees USING btree (employee_number, id);

CREATE INDEX employees_last_name_id_idx ON public.employees USING btree (last_name, id);

CREATE INDEX employees_organization_id_department_id_idx ON public.employees USING btree (organization_id, department_id);

CREATE INDEX gateway_commands_claim ON public.gateway_commands USING btree (gateway_id, priority DESC, created_at) WHERE (status = 'pending'::text);

CREATE INDEX gateway_commands_deadline ON public.gateway_commands USING btree (ack_deadline) WHERE (status = 'delivered'::text);

CREATE INDEX gateway_commands_expiry ON public.gateway_commands USING btree (expires_at) WHERE (status = 'pending'::text);

CREATE UNIQUE INDEX gateway_commands_organization_gateway_id ON public.gateway_commands USING btree (organization_id, gateway_id, id);

CREATE INDEX gateway_commands_pending_type ON public.gateway_commands USING btree (gateway_id, type) WHERE (status = 'pending'::text);

CREATE INDEX gateway_status_snapshots_gateway_time ON public.gateway_status_snapshots USING btree (gateway_id, "timestamp" DESC);

CREATE INDEX ingest_batches_created ON public.ingest_batches USING btree (created_at);

CREATE INDEX policy_distribution_targets_command_id ON public.policy_distribution_targets USING btree (command_id) WHERE (command_id IS NOT NULL);

CREATE INDEX retention_policies_lookup ON public.retention_policies USING btree (resource_type, organization_id) WHERE is_active;

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON public.audit_log FOR EACH STATEMENT EXECUTE FUNCTION public.audit_log_append_only();

CREATE TRIGGER audit_log_no_update BEFORE DELETE OR UPDATE ON public.audit_log FOR EACH ROW EXECUTE FUNCTION public.audit_log_append_only();

CREATE TRIGGER dashboard_events_insert AFTER INSERT ON public.gateway_commands REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.dashboard_events_stage_commands();

CREATE TRIGGER dashboard_events_insert AFTER INSERT ON public.gateway_instances FOR EACH ROW EXECUTE FUNCTION app.dashboard_events_stage_gateway();

CREATE TRIGGER dashboard_events_insert AFTER INSERT ON public.policy_distribution_targets REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.dashboard_events_stage_targets();

CREATE TRIGGER dashboard_events_insert AFTER INSERT ON public.policy_distributions FOR EACH ROW EXECUTE FUNCTION app.dashboard_events_stage_distribution();

CREATE TRIGGER dashboard_events_update AFTER UPDATE ON public.gateway_commands REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.dashboard_events_stage_commands();

CREATE TRIGGER dashboard_events_update AFTER UPDATE OF status ON public.gateway_instances FOR EACH ROW WHEN ((old.status IS DISTINCT FROM new.status)) EXECUTE FUNCTION app.dashboard_events_stage_gateway();

CREATE TRIGGER dashboard_events_update AFTER UPDATE ON public.policy_distribution_targets REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.dashboard_events_stage_targets();

CREATE TRIGGER dashboard_events_update AFTER UPDATE OF stage ON public.policy_distributions FOR EACH ROW WHEN ((old.stage IS DISTINCT FROM new.stage)) EXECUTE FUNCTION app.dashboard_events_stage_distribution();

CREATE TRIGGER departments_bump_version BEFORE UPDATE ON public.departments FOR EACH ROW EXECUTE FUNCTION app.bump_version();

CREATE TRIGGER device_commands_follow AFTER UPDATE OF status ON public.gateway_commands FOR EACH ROW WHEN (((new.type = 'device_command'::text) AND (old.status IS DISTINCT FROM new.status))) EXECUTE FUNCTION public.device_commands_follow();

CREATE TRIGGER devices_bump_version BEFORE UPDATE OF gateway_id, name, adapter_type, host, port, serial, config ON public.devices FOR EACH ROW EXECUTE FUNCTION app.bump_version();

CREATE TRIGGER employees_bump_version BEFORE UPDATE ON public.employees FOR EACH ROW EXECUTE FUNCTION app.bump_version();

CREATE TRIGGER gateway_commands_notify_insert AFTER INSERT ON public.gateway_commands REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.gateway_commands_notify_inserted();

CREATE TRIGGER gateway_commands_notify_update AFTER UPDATE OF status ON public.gateway_commands FOR EACH ROW WHEN ((new.status = 'pending'::text)) EXECUTE FUNCTION public.gateway_commands_notify();

CREATE TRIGGER gateway_instances_bump_version BEFORE UPDATE OF name, config ON public.gateway_instances FOR EACH ROW EXECUTE FUNCTION app.bump_version();

CREATE TRIGGER gateway_instances_revoked_notify AFTER UPDATE OF revoked_at, api_key_hash ON public.gateway_instances FOR EACH ROW WHEN (((new.revoked_at IS NOT NULL) OR (new.api_key_hash IS DISTINCT FROM old.api_key_hash))) EXECUTE FUNCTION public.gateway_instances_revoked_notify();

CREATE TRIGGER gateway_instances_void_pending BEFORE UPDATE OF api_key_hash ON public.gateway_instances FOR EACH ROW WHEN (((new.api_key_hash IS DISTINCT FROM old.api_key_hash) AND (old.pending_key_hash IS NOT NULL) AND (NOT (new.pending_key_hash IS DISTINCT FROM old.pending_key_hash)))) EXECUTE FUNCTION public.gateway_instances_void_pending();

CREATE TRIGGER organizations_bump_version BEFORE UPDATE ON public.organizations FOR EACH ROW EXECUTE FUNCTION app.bump_version();

CREATE TRIGGER organizations_check_time_zone BEFORE INSERT OR UPDATE OF time_zone ON public.organizations FOR EACH ROW EXECUTE FUNCTION app.organizations_check_time_zone();

CREATE TRIGGER organizations_time_zone_changed AFTER UPDATE OF time_zone ON public.organizations FOR EACH ROW WHEN ((old.time_zone IS DISTINCT FROM new.time_zone)) EXECUTE FUNCTION app.organizations_time_zone_changed();

CREATE TRIGGER policies_bump_version BEFORE UPDATE ON public.policies FOR EACH ROW EXECUTE FUNCTION app.bump_version();

CREATE TRIGGER retention_policies_bump_version BEFORE UPDATE ON public.retention_policies FOR EACH ROW EXECUTE FUNCTION app.bump_version();

CREATE TRIGGER users_bump_version BEFORE UPDATE OF organization_id, email, password_hash, role, department_id, employee_id, is_active ON public.users FOR EACH ROW EXECUTE FUNCTION app.bump_version();

CREATE TRIGGER users_end_sessions AFTER UPDATE OF role, organization_id, department_id, employee_id, is_active ON public.users FOR EACH ROW WHEN (((old.role IS DISTINCT FROM new.role) OR (old.organization_id IS DISTINCT FROM new.organization_id) OR (old.department_id IS DISTINCT FROM new.department_id) OR (old.employee_id IS DISTINCT FROM new.employee_id) OR (old.is_active AND (NOT new.is_active)))) EXECUTE FUNCTION app.users_end_sessions();

ALTER TABLE ONLY monitoring.maintainer_policy_runs
    ADD CONSTRAINT maintainer_policy_runs_table_name_fkey FOREIGN KEY (table_name) REFERENCES monitoring.retention(table_name) ON DELETE CASCADE;

ALTER TABLE ONLY public.agent_instances
    ADD CONSTRAINT agent_instances_organization_id_gateway_id_fkey FOREIGN KEY (organization_id, gateway_id) REFERENCES public.gateway_instances(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.auth_lockouts
    ADD CONSTRAINT auth_lockouts_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.auth_lockouts
    ADD CONSTRAINT auth_lockouts_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.auth_refresh_tokens
    ADD CONSTRAINT auth_refresh_tokens_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.auth_refresh_tokens
    ADD CONSTRAINT auth_refresh_tokens_session_id_fkey FOREIGN KEY (session_id) REFERENCES public.auth_sessions(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.auth_sessions
    ADD CONSTRAINT auth_sessions_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.auth_sessions
    ADD CONSTRAINT auth_sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.departments
    ADD CONSTRAINT departments_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.departments
    ADD CONSTRAINT departments_organization_id_parent_id_fkey FOREIGN KEY (organization_id, parent_id) REFERENCES public.departments(organization_id, id);

ALTER TABLE ONLY public.device_commands
    ADD CONSTRAINT device_commands_gateway_command_fkey FOREIGN KEY (organization_id, gateway_id, gateway_command_id) REFERENCES public.gateway_commands(organization_id, gateway_id, id) ON DELETE SET NULL (gateway_command_id);

ALTER TABLE ONLY public.device_commands
    ADD CONSTRAINT device_commands_organization_id_device_id_fkey FOREIGN KEY (organization_id, device_id) REFERENCES public.devices(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.device_commands
    ADD CONSTRAINT device_commands_organization_id_gateway_id_fkey FOREIGN KEY (organization_id, gateway_id) REFERENCES public.gateway_instances(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_organization_id_gateway_id_fkey FOREIGN KEY (organization_id, gateway_id) REFERENCES public.gateway_instances(organization_id, id);

ALTER TABLE ONLY public.employee_identities
    ADD CONSTRAINT employee_identities_organization_id_employee_id_fkey FOREIGN KEY (organization_id, employee_id) REFERENCES public.employees(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.employee_identities
    ADD CONSTRAINT employee_identities_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.employees
    ADD CONSTRAINT employees_organization_id_department_id_fkey FOREIGN KEY (organization_id, department_id) REFERENCES public.departments(organization_id, id);

ALTER TABLE ONLY public.employees
    ADD CONSTRAINT employees_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.gateway_commands
    ADD CONSTRAINT gateway_commands_organization_id_gateway_id_fkey FOREIGN KEY (organization_id, gateway_id) REFERENCES public.gateway_instances(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.gateway_drop_reports
    ADD CONSTRAINT gateway_drop_reports_organization_id_gateway_id_fkey FOREIGN KEY (organization_id, gateway_id) REFERENCES public.gateway_instances(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.gateway_ingest_stats
    ADD CONSTRAINT gateway_ingest_stats_organization_id_gateway_id_fkey FOREIGN KEY (organization_id, gateway_id) REFERENCES public.gateway_instances(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.gateway_instances
    ADD CONSTRAINT gateway_instances_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.gateway_resent_seqs
    ADD CONSTRAINT gateway_resent_seqs_organization_id_gateway_id_fkey FOREIGN KEY (organization_id, gateway_id) REFERENCES public.gateway_instances(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.gateway_status_snapshots
    ADD CONSTRAINT gateway_status_snapshots_organization_id_gateway_id_fkey FOREIGN KEY (organization_id, gateway_id) REFERENCES public.gateway_instances(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.ingest_batches
    ADD CONSTRAINT ingest_batches_organization_id_gateway_id_fkey FOREIGN KEY (organization_id, gateway_id) REFERENCES public.gateway_instances(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.organizations
    ADD CONSTRAINT organizations_report_policy_fkey FOREIGN KEY (id, report_policy_id) REFERENCES public.policies(organization_id, id) ON DELETE SET NULL (report_policy_id);

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_organization_id_created_by_fkey FOREIGN KEY (organization_id, created_by) REFERENCES public.users(organization_id, id);

ALTER TABLE ONLY public.policies
    ADD CONSTRAINT policies_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.policy_changes
    ADD CONSTRAINT policy_changes_organization_id_changed_by_fkey FOREIGN KEY (organization_id, changed_by) REFERENCES public.users(organization_id, id);

ALTER TABLE ONLY public.policy_changes
    ADD CONSTRAINT policy_changes_organization_id_policy_id_fkey FOREIGN KEY (organization_id, policy_id) REFERENCES public.policies(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.policy_changes
    ADD CONSTRAINT policy_changes_organization_id_version_id_fkey FOREIGN KEY (organization_id, version_id) REFERENCES public.policy_versions(organization_id, id);

ALTER TABLE ONLY public.policy_distribution_targets
    ADD CONSTRAINT policy_distribution_targets_command_id_fkey FOREIGN KEY (command_id) REFERENCES public.gateway_commands(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.policy_distribution_targets
    ADD CONSTRAINT policy_distribution_targets_organization_id_distribution_i_fkey FOREIGN KEY (organization_id, distribution_id) REFERENCES public.policy_distributions(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.policy_distribution_targets
    ADD CONSTRAINT policy_distribution_targets_organization_id_gateway_id_fkey FOREIGN KEY (organization_id, gateway_id) REFERENCES public.gateway_instances(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.policy_distribution_targets
    ADD CONSTRAINT policy_distribution_targets_restart_command_id_fkey FOREIGN KEY (restart_command_id) REFERENCES public.gateway_commands(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.policy_distributions
    ADD CONSTRAINT policy_distributions_organization_id_policy_id_fkey FOREIGN KEY (organization_id, policy_id) REFERENCES public.policies(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.policy_distributions
    ADD CONSTRAINT policy_distributions_organization_id_version_id_fkey FOREIGN KEY (organization_id, version_id) REFERENCES public.policy_versions(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.policy_versions
    ADD CONSTRAINT policy_versions_organization_id_policy_id_fkey FOREIGN KEY (organization_id, policy_id) REFERENCES public.policies(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.policy_versions
    ADD CONSTRAINT policy_versions_organization_id_released_by_fkey FOREIGN KEY (organization_id, released_by) REFERENCES public.users(organization_id, id);

ALTER TABLE ONLY public.provisioning_tokens
    ADD CONSTRAINT provisioning_tokens_organization_id_gateway_id_fkey FOREIGN KEY (organization_id, gateway_id) REFERENCES public.gateway_instances(organization_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.retention_policies
    ADD CONSTRAINT retention_policies_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.retention_policies
    ADD CONSTRAINT retention_policies_resource_type_fkey FOREIGN KEY (resource_type) REFERENCES monitoring.retention(table_name);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_organization_id_department_id_fkey FOREIGN KEY (organization_id, department_id) REFERENCES public.departments(organization_id, id);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_organization_id_employee_id_fkey FOREIGN KEY (organization_id, employee_id) REFERENCES public.employees(organization_id, id);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_organization_id_fkey FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;

ALTER TABLE monitoring.active_windows ENABLE ROW LEVEL SECURITY;

ALTER TABLE monitoring.device_events ENABLE ROW LEVEL SECURITY;

ALTER TABLE monitoring.screenshots ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_insert ON monitoring.active_windows FOR INSERT WITH CHECK ((organization_id = ( SELECT app.org_id() AS org_id)));

CREATE POLICY tenant_insert ON monitoring.device_events FOR INSERT WITH CHECK ((organization_id = ( SELECT app.org_id() AS org_id)));

CREATE POLICY tenant_insert ON monitoring.screenshots FOR INSERT WITH CHECK ((organization_id = ( SELECT app.org_id() AS org_id)));

CREATE POLICY tenant_insert ON monitoring.user_sessions FOR INSERT WITH CHECK ((organization_id = ( SELECT app.org_id() AS org_id)));

CREATE POLICY tenant_insert ON monitoring.visited_sites FOR INSERT WITH CHECK ((organization_id = ( SELECT app.org_id() AS org_id)));

ALTER TABLE monitoring.user_sessions ENABLE ROW LEVEL SECURITY;

ALTER TABLE monitoring.visited_sites ENABLE ROW LEVEL SECURITY;

ALTER TABLE monitoring_fallback.active_windows ENABLE ROW LEVEL SECURITY;

ALTER TABLE monitoring_fallback.device_events ENABLE ROW LEVEL SECURITY;

ALTER TABLE monitoring_fallback.screenshots ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_insert ON monitoring_fallback.active_windows FOR INSERT WITH CHECK ((organization_id = ( SELECT app.org_id() AS org_id)));

CREATE POLICY tenant_insert ON monitoring_fallback.device_events FOR INSERT WITH CHECK ((organization_id = ( SELECT app.org_id() AS org_id)));

CREATE POLICY tenant_insert ON monitoring_fallback.screenshots FOR INSERT WITH CHECK ((organization_id = ( SELECT app.org_id() AS org_id)));

CREATE POLICY tenant_insert ON monitoring_fallback.user_sessions FOR INSERT WITH CHECK ((organization_id = ( SELECT app.org_id() AS org_id)));

CREATE POLICY tenant_insert ON monitoring_fallback.visited_sites FOR INSERT WITH CHECK ((organization_id = ( SELECT app.org_id() AS org_id)));

ALTER TABLE monitoring_fallback.user_sessions ENABLE ROW LEVEL SECURITY;

ALTER TABLE monitoring_fallback.visited_sites ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.agent_instances ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.auth_lockouts ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.auth_refresh_tokens ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.auth_sessions ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.dashboard_events ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.dashboard_events_staged ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.departments ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.device_commands ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.devices ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.employee_identities ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.employees ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.gateway_commands ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.gateway_drop_reports ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.gateway_ingest_stats ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.gateway_instances ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.gateway_resent_seqs ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.gateway_status_snapshots ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.ingest_batches ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.ingest_store_accounting ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.organizations ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.policies ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.policy_changes ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.policy_distribution_targets ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.policy_distributions ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.policy_versions ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.provisioning_tokens ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.retention_policies ENABLE ROW LEVEL SECURITY;

CREATE POLICY role_delete ON public.agent_instances AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.departments AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_people() AS writes_people));

CREATE POLICY role_delete ON public.device_commands AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.devices AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.employee_identities AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_people() AS writes_people));

CREATE POLICY role_delete ON public.employees AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_people() AS writes_people));

CREATE POLICY role_delete ON public.gateway_commands AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.gateway_drop_reports AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.gateway_ingest_stats AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.gateway_instances AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.gateway_resent_seqs AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.gateway_status_snapshots AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.ingest_batches AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.ingest_store_accounting AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.organizations AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.policies AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.policy_changes AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.policy_distribution_targets AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.policy_distributions AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.policy_versions AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.provisioning_tokens AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.retention_policies AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_delete ON public.users AS RESTRICTIVE FOR DELETE TO staff_dashboard, staff_admin USING (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.agent_instances AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.departments AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_people() AS writes_people));

CREATE POLICY role_insert ON public.device_commands AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.sees_whole_organization() AS sees_whole_organization));

CREATE POLICY role_insert ON public.devices AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.employee_identities AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_people() AS writes_people));

CREATE POLICY role_insert ON public.employees AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_people() AS writes_people));

CREATE POLICY role_insert ON public.gateway_commands AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK ((( SELECT app.writes_organization() AS writes_organization) OR ((type = 'device_command'::text) AND ( SELECT app.sees_whole_organization() AS sees_whole_organization))));

CREATE POLICY role_insert ON public.gateway_drop_reports AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.gateway_ingest_stats AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.gateway_instances AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.gateway_resent_seqs AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.gateway_status_snapshots AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.ingest_batches AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.ingest_store_accounting AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.organizations AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.policies AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.policy_changes AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.policy_distribution_targets AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.policy_distributions AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.policy_versions AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.provisioning_tokens AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.retention_policies AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_insert ON public.users AS RESTRICTIVE FOR INSERT TO staff_dashboard, staff_admin WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_read ON public.agent_instances AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.audit_log AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.departments AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (id IN ( SELECT unnest(( SELECT app.scope_departments() AS scope_departments)) AS unnest))));

CREATE POLICY role_read ON public.device_commands AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.devices AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.employee_identities AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (employee_id IN ( SELECT unnest(( SELECT app.scope_employees() AS scope_employees)) AS unnest))));

CREATE POLICY role_read ON public.employees AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (id IN ( SELECT unnest(( SELECT app.scope_employees() AS scope_employees)) AS unnest))));

CREATE POLICY role_read ON public.gateway_commands AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.gateway_drop_reports AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.gateway_ingest_stats AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.gateway_instances AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.gateway_resent_seqs AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.gateway_status_snapshots AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.ingest_batches AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.ingest_store_accounting AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.organizations AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR true));

CREATE POLICY role_read ON public.policies AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.policy_changes AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.policy_distribution_targets AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.policy_distributions AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.policy_versions AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.provisioning_tokens AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR false));

CREATE POLICY role_read ON public.retention_policies AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (( SELECT app.app_role() AS app_role) = 'DEPARTMENT_LEAD'::text)));

CREATE POLICY role_read ON public.users AS RESTRICTIVE FOR SELECT TO staff_dashboard, staff_admin USING ((( SELECT app.sees_whole_organization() AS sees_whole_organization) OR (employee_id IN ( SELECT unnest(( SELECT app.scope_employees() AS scope_employees)) AS unnest)) OR (id = ( SELECT app.user_id() AS user_id))));

CREATE POLICY role_update ON public.agent_instances AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.departments AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_people() AS writes_people));

CREATE POLICY role_update ON public.device_commands AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.devices AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.employee_identities AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_people() AS writes_people));

CREATE POLICY role_update ON public.employees AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_people() AS writes_people));

CREATE POLICY role_update ON public.gateway_commands AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.gateway_drop_reports AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.gateway_ingest_stats AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.gateway_instances AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.gateway_resent_seqs AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.gateway_status_snapshots AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.ingest_batches AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.ingest_store_accounting AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.organizations AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.policies AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.policy_changes AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.policy_distribution_targets AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.policy_distributions AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.policy_versions AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.provisioning_tokens AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.retention_policies AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY role_update ON public.users AS RESTRICTIVE FOR UPDATE TO staff_dashboard, staff_admin USING (true) WITH CHECK (( SELECT app.writes_organization() AS writes_organization));

CREATE POLICY tenant_append ON public.audit_log FOR INSERT WITH CHECK ((CURRENT_USER = 'staff_owner'::name));

CREATE POLICY tenant_events ON public.dashboard_events USING ((((organization_id = ( SELECT app.org_id() AS org_id)) AND (( SELECT app.app_role() AS app_role) = ANY (ARRAY['ORG_ADMIN'::text, 'HR'::text, 'ADMIN'::text]))) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.agent_instances USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.auth_lockouts USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.auth_refresh_tokens USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.auth_sessions USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.dashboard_events_staged USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.departments USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.device_commands USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.devices USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.employee_identities USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.employees USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.gateway_commands USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.gateway_drop_reports USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.gateway_ingest_stats USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.gateway_instances USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.gateway_resent_seqs USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.gateway_status_snapshots USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.ingest_batches USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.ingest_store_accounting USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.organizations USING (((id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.policies USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.policy_changes USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.policy_distribution_targets USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.policy_distributions USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.policy_versions USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.provisioning_tokens USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_isolation ON public.users USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_read ON public.audit_log FOR SELECT USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_read ON public.retention_policies FOR SELECT USING (((organization_id IS NULL) OR (organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

CREATE POLICY tenant_write ON public.retention_policies USING (((organization_id = ( SELECT app.org_id() AS org_id)) OR ( SELECT app.all_organizations() AS all_organizations)));

ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;
