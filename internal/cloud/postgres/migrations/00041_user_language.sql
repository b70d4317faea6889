-- Each user's language for the web console (issue 18): English, Russian or
-- Uzbek (Latin), NULL for the browser's choice. A user sets their own with
-- app.set_user_language, which writes that one column of their own row
-- only: the users table's update policy is for administrators (who change
-- roles and scopes), and a language is no reason to widen it.

-- +goose Up
-- +goose StatementBegin
ALTER TABLE public.users ADD COLUMN language text NULL
    CONSTRAINT users_language_check CHECK (language IN ('en', 'ru', 'uz'));

-- app.set_user_language sets the caller's own language (the signed tenant
-- context's user, in the context's organisation, or a platform ADMIN
-- without one; NULL resets it to the browser's choice) and reports whether
-- such a user was found (false: nothing changed). It runs as the owner,
-- which row-level security does not hold, so it matches the organisation
-- itself.
CREATE FUNCTION app.set_user_language(p_language text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
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
REVOKE ALL ON FUNCTION app.set_user_language(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.set_user_language(text) TO staff_dashboard, staff_admin;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION app.set_user_language(text);
ALTER TABLE public.users DROP COLUMN language;
-- +goose StatementEnd
