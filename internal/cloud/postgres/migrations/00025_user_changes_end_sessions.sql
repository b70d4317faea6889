-- A dashboard user's sessions end when what their access tokens say about
-- them stops being true (issue 14). An access token carries the user's
-- role, organisation, department and employee; a session's refresh tokens
-- mint more of them. So when an administrator changes any of those, or
-- disables the user, every session of the user ends at once (the API
-- checks app.session_active on every request): the user signs in again and
-- gets tokens that say what is true now. A trigger does it, so that every
-- path that changes a user (the API, staffctl, a DBA's UPDATE) keeps the
-- rule.
--
-- A password set by an administrator (not by the user, which
-- app.password_change handles) ends the sessions through
-- app.user_sessions_end(), which the caller may use only on a user its
-- tenant context can see, as an organisation administrator or the platform
-- ADMIN. The password hash is not in the trigger: a sign-in that upgrades
-- an old hash changes it too, and must not end the user's other sessions.

-- +goose Up
-- +goose StatementBegin
ALTER TABLE public.auth_sessions DROP CONSTRAINT auth_sessions_revoked_reason_check,
    ADD CONSTRAINT auth_sessions_revoked_reason_check CHECK (revoked_reason IN
        ('logout', 'logout_everywhere', 'password_change', 'reuse', 'disabled', 'user_changed', 'password_reset'));

CREATE FUNCTION app.users_end_sessions() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    UPDATE public.auth_sessions
       SET revoked_at = now(), revoked_reason = CASE WHEN NEW.is_active THEN 'user_changed' ELSE 'disabled' END
     WHERE user_id = NEW.id AND revoked_at IS NULL;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION app.users_end_sessions() FROM PUBLIC;

CREATE TRIGGER users_end_sessions
AFTER UPDATE OF role, organization_id, department_id, employee_id, is_active ON public.users
FOR EACH ROW
WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.organization_id IS DISTINCT FROM NEW.organization_id
      OR OLD.department_id IS DISTINCT FROM NEW.department_id OR OLD.employee_id IS DISTINCT FROM NEW.employee_id
      OR (OLD.is_active AND NOT NEW.is_active))
EXECUTE FUNCTION app.users_end_sessions();

-- Ends every session of p_user_id, when the caller's verified context is
-- an organisation administrator's who can see the user, or the platform
-- ADMIN's: the number of sessions ended, or -1 when the user is not
-- visible or the caller may not (nothing changes then). The visibility
-- check reads users through row-level security as the caller would: the
-- function runs as the owner, so it asks the tenant predicate itself.
CREATE FUNCTION app.user_sessions_end(p_user_id bigint) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
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
REVOKE ALL ON FUNCTION app.user_sessions_end(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_sessions_end(bigint) TO staff_dashboard, staff_admin;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION app.user_sessions_end(bigint);
DROP TRIGGER users_end_sessions ON public.users;
DROP FUNCTION app.users_end_sessions();
UPDATE public.auth_sessions SET revoked_reason = 'disabled' WHERE revoked_reason IN ('user_changed', 'password_reset');
ALTER TABLE public.auth_sessions DROP CONSTRAINT auth_sessions_revoked_reason_check,
    ADD CONSTRAINT auth_sessions_revoked_reason_check CHECK (revoked_reason IN
        ('logout', 'logout_everywhere', 'password_change', 'reuse', 'disabled'));
-- +goose StatementEnd
