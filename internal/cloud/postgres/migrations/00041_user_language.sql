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
-- context's user; NULL resets it to the browser's choice) and reports
-- whether the caller is a user of the context (false: nothing changed).
CREATE FUNCTION app.set_user_language(p_language text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    uid bigint := app.user_id();
BEGIN
    IF uid IS NULL THEN
        RETURN false;
    END IF;
    UPDATE public.users SET language = p_language, updated_at = now() WHERE id = uid;
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
