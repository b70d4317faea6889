-- Dashboard sign-in (issue 14): sessions with rotating refresh tokens, and
-- a per-account lock against password guessing that holds across API
-- instances because it lives here.
--
-- Tables (no privilege for any runtime role; RLS enabled and forced with
-- the usual tenant policy, so only the owner's definer functions below
-- touch them):
--   * auth_sessions: one row per sign-in, the refresh-token "family"; its
--     id is the access token's session id ("sid"). A family lives at most
--     until expires_at (the absolute maximum, default 30 days) and is
--     revoked as a whole (logout, logout everywhere, password change,
--     refresh-token reuse, a disabled user).
--   * auth_refresh_tokens: SHA-256 of every refresh token ever issued in a
--     family (the token itself is never stored). Each is used once: a
--     refresh marks it spent and issues the next one; presenting a spent
--     one again is reuse, which revokes the family. A token expires at
--     issued_at + the idle window (default 14 days), never after its
--     family.
--   * auth_lockouts: per user, the consecutive failed sign-ins, how many
--     lockouts followed each other, and the lock's end. After
--     p_max_failures failures the account is locked for p_lock_base ·
--     2^(lockouts-1), capped at p_lock_max; a success resets it. The lock's
--     arithmetic uses this database's now(), never a caller's clock.
--   Each login deletes the user's sessions past their end and those revoked
--   over a day ago (with their tokens), so no sweep is needed.
--
-- The dashboard role cannot see users without a tenant context (RLS), and
-- a sign-in has none yet, so every step goes through a SECURITY DEFINER
-- function of the owner (search_path pg_catalog, fully qualified names),
-- executable by staff_dashboard and staff_admin only. They are narrow:
-- app.login_lookup is the only one that returns a password hash (by exact
-- e-mail), and the others write only what their step needs. Each writes its
-- own audit rows (app.audit() needs a verified context, which a failed
-- sign-in has none of): organisation of the user when known, actor = the
-- e-mail or 'anonymous', details with the client address and the reason;
-- never a password or token.

-- +goose Up
-- +goose StatementBegin
CREATE TABLE public.auth_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         bigint NOT NULL REFERENCES public.users(id) ON DELETE CASCADE,
    organization_id bigint REFERENCES public.organizations(id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text CHECK (revoked_reason IN ('logout', 'logout_everywhere', 'password_change', 'reuse', 'disabled')),
    client_address  inet,
    user_agent      text CHECK (length(user_agent) <= 512),
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX auth_sessions_user ON public.auth_sessions (user_id);

CREATE TABLE public.auth_refresh_tokens (
    token_hash      bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id      uuid NOT NULL REFERENCES public.auth_sessions(id) ON DELETE CASCADE,
    organization_id bigint REFERENCES public.organizations(id) ON DELETE CASCADE,
    issued_at       timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    spent_at        timestamptz
);
CREATE INDEX auth_refresh_tokens_session ON public.auth_refresh_tokens (session_id);

CREATE TABLE public.auth_lockouts (
    user_id         bigint PRIMARY KEY REFERENCES public.users(id) ON DELETE CASCADE,
    organization_id bigint REFERENCES public.organizations(id) ON DELETE CASCADE,
    failed_logins   integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    lockouts        integer NOT NULL DEFAULT 0 CHECK (lockouts >= 0),
    locked_until    timestamptz,
    last_failed_at  timestamptz
);

DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['auth_sessions', 'auth_refresh_tokens', 'auth_lockouts'] LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON public.%I
            USING (organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations()))$p$, t);
        EXECUTE format('REVOKE ALL ON public.%I FROM PUBLIC, staff_dashboard, staff_admin, staff_ingest', t);
    END LOOP;
END $do$;

-- The account an e-mail names, for a sign-in: the only function that
-- returns a password hash. retry_after_ms > 0 while the account is locked
-- (by this database's clock). No row for an unknown e-mail.
CREATE FUNCTION app.login_lookup(p_email text)
RETURNS TABLE (user_id bigint, organization_id bigint, role text, department_id bigint, employee_id bigint,
               email text, password_hash text, is_active boolean, retry_after_ms bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT u.id, u.organization_id, u.role, u.department_id, u.employee_id, u.email, u.password_hash, u.is_active,
           CASE WHEN l.locked_until > now()
                THEN ceil(extract(epoch FROM l.locked_until - now()) * 1000)::bigint ELSE 0 END
      FROM public.users u LEFT JOIN public.auth_lockouts l ON l.user_id = u.id
     WHERE u.email = lower(p_email) AND length(p_email) <= 255
$$;

-- Records the outcome of a password check and returns what it decided.
--   p_user_id NULL: an unknown e-mail; only audited ('denied').
--   p_outcome 'wrong_password' | 'inactive': a failure; counted under
--     FOR UPDATE (parallel guesses all count), locking the account after
--     p_max_failures; returns 'failed', or 'locked' with retry_after_ms
--     when this failure locked it (or a lock already holds).
--   p_outcome 'locked': the caller refused during a lock; audited only.
--   p_outcome 'success': unless a lock appeared meanwhile or the user was
--     disabled, resets the counters, stores p_new_hash when given (a
--     rehash with current parameters), sets last_login_at, creates the
--     session and its first refresh token (SHA-256 p_refresh_hash), and
--     returns 'ok' with the session id and the token's expiry.
-- p_action is what the check was for ('login' or 'password_change'), the
-- audit action of a failure.
CREATE FUNCTION app.login_result(
    p_email text, p_user_id bigint, p_outcome text, p_action text, p_new_hash text, p_refresh_hash bytea,
    p_refresh_idle interval, p_refresh_max interval, p_max_failures integer, p_lock_base interval,
    p_lock_max interval, p_client inet, p_user_agent text)
RETURNS TABLE (outcome text, retry_after_ms bigint, session_id uuid, refresh_expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
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

-- Rotates a refresh token: the presented one (SHA-256 p_old_hash) is
-- marked spent and p_new_hash issued in its family. Outcomes:
--   'ok' with the user's current identity and the new token's expiry;
--   'unknown' (no such token), 'expired', 'revoked' (family revoked),
--   'disabled' (the user was disabled: the family is revoked);
--   'reuse': the token was already spent, so it was copied; the whole
--   family is revoked and the reuse audited.
CREATE FUNCTION app.session_refresh(p_old_hash bytea, p_new_hash bytea, p_refresh_idle interval, p_client inet)
RETURNS TABLE (outcome text, session_id uuid, user_id bigint, organization_id bigint, role text,
               department_id bigint, employee_id bigint, email text, refresh_expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
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

-- Revokes the family of a refresh token (spent or not): logout. True when
-- a family was revoked now, false when the token is unknown or its family
-- was already revoked.
CREATE FUNCTION app.session_logout(p_hash bytea, p_client inet) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
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

-- Revokes every family of a user, on behalf of one of its active sessions
-- (p_session_id; the caller's verified access token names both): logout
-- everywhere, p_reason 'logout_everywhere'. Returns the number of
-- families revoked, or -1 when p_session_id is not an active session of
-- p_user_id (nothing is revoked then).
CREATE FUNCTION app.sessions_revoke_user(p_user_id bigint, p_session_id uuid, p_client inet) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
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

-- The e-mail of the user of an active session (p_session_id of p_user_id,
-- the user active), for a password change; NULL otherwise.
CREATE FUNCTION app.session_email(p_user_id bigint, p_session_id uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT u.email FROM public.users u JOIN public.auth_sessions s ON s.user_id = u.id
     WHERE u.id = p_user_id AND s.id = p_session_id AND s.revoked_at IS NULL AND s.expires_at > now() AND u.is_active
$$;

-- A password change after the old password verified: stores the new hash
-- (argon2id, made by the caller), revokes every family of the user and
-- opens a new one for the caller with its first refresh token. 'ok' with
-- the session id and the token's expiry, or 'unauthenticated' when
-- p_session_id is not an active session of an active p_user_id (nothing
-- changes then).
CREATE FUNCTION app.password_change(
    p_user_id bigint, p_session_id uuid, p_new_hash text, p_refresh_hash bytea, p_refresh_idle interval,
    p_refresh_max interval, p_client inet, p_user_agent text)
RETURNS TABLE (outcome text, session_id uuid, refresh_expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
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
END $$;

-- Whether an access token's family still holds: not revoked, not past its
-- absolute expiry, its user active. Two primary-key lookups; the
-- middleware calls it on every request.
CREATE FUNCTION app.session_active(p_session_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT EXISTS (SELECT 1 FROM public.auth_sessions s JOIN public.users u ON u.id = s.user_id
                    WHERE s.id = p_session_id AND s.revoked_at IS NULL AND s.expires_at > now() AND u.is_active)
$$;

REVOKE ALL ON FUNCTION app.login_lookup(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.login_result(text, bigint, text, text, text, bytea, interval, interval, integer, interval, interval, inet, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.session_refresh(bytea, bytea, interval, inet) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.session_logout(bytea, inet) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.sessions_revoke_user(bigint, uuid, inet) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.session_email(bigint, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.password_change(bigint, uuid, text, bytea, interval, interval, inet, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.session_active(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.login_lookup(text) TO staff_dashboard, staff_admin;
GRANT EXECUTE ON FUNCTION app.login_result(text, bigint, text, text, text, bytea, interval, interval, integer, interval, interval, inet, text) TO staff_dashboard, staff_admin;
GRANT EXECUTE ON FUNCTION app.session_refresh(bytea, bytea, interval, inet) TO staff_dashboard, staff_admin;
GRANT EXECUTE ON FUNCTION app.session_logout(bytea, inet) TO staff_dashboard, staff_admin;
GRANT EXECUTE ON FUNCTION app.sessions_revoke_user(bigint, uuid, inet) TO staff_dashboard, staff_admin;
GRANT EXECUTE ON FUNCTION app.session_email(bigint, uuid) TO staff_dashboard, staff_admin;
GRANT EXECUTE ON FUNCTION app.password_change(bigint, uuid, text, bytea, interval, interval, inet, text) TO staff_dashboard, staff_admin;
GRANT EXECUTE ON FUNCTION app.session_active(uuid) TO staff_dashboard, staff_admin;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION app.session_active(uuid);
DROP FUNCTION app.password_change(bigint, uuid, text, bytea, interval, interval, inet, text);
DROP FUNCTION app.session_email(bigint, uuid);
DROP FUNCTION app.sessions_revoke_user(bigint, uuid, inet);
DROP FUNCTION app.session_logout(bytea, inet);
DROP FUNCTION app.session_refresh(bytea, bytea, interval, inet);
DROP FUNCTION app.login_result(text, bigint, text, text, text, bytea, interval, interval, integer, interval, interval, inet, text);
DROP FUNCTION app.login_lookup(text);
DROP TABLE public.auth_lockouts, public.auth_refresh_tokens, public.auth_sessions;
-- +goose StatementEnd
