-- Gateway API key rotation (issue 5, rotate_api_key). A gateway holds one
-- key at a time; during a rotation the cloud knows two: the current key
-- (api_key_hash) and a pending one (pending_key_hash), both stored only as
-- SHA-256. The plaintext pending key is shown once, to the gateway that asked
-- for it with its current key, and never sits in the command queue.
--
-- The gateway saves a new key to disk before it uses it, so the first
-- request authenticated with the pending key proves the gateway holds it:
-- that request promotes it (the old key stops working at once, and the
-- NOTIFY of 00007 closes sockets still authenticated with it) and completes
-- the rotate_api_key command that asked for it. Until then the old key keeps
-- working. After pending_key_expires_at, the first request that still uses
-- the old key shows that the gateway never saved the new one, and the
-- pending key is discarded. A gateway silent since the rotation may hold
-- either key, so both stay valid until it is heard from again: a crash or an
-- outage at any step never locks a gateway out.
--
-- Columns, not a table of their own: the pending key belongs to exactly one
-- gateway row and inherits its forced row-level security and grants.

-- +goose Up
-- +goose StatementBegin
ALTER TABLE gateway_instances
    ADD COLUMN pending_key_hash       bytea UNIQUE CHECK (length(pending_key_hash) = 32),
    ADD COLUMN pending_key_prefix     text CHECK (length(pending_key_prefix) <= 16),
    ADD COLUMN pending_key_expires_at timestamptz,
    -- The rotate_api_key command the pending key answers, if any.
    ADD COLUMN pending_command_id     uuid,
    -- When the current key was promoted, and the command that asked for it.
    ADD COLUMN key_rotated_at         timestamptz,
    ADD COLUMN key_command_id         uuid,
    ADD CONSTRAINT gateway_instances_pending_key
        CHECK ((pending_key_hash IS NULL) = (pending_key_expires_at IS NULL));

-- A key set any other way than by promotion (re-provisioning, a key reset
-- by hand) voids a pending key: it was issued against a key that is gone.
CREATE FUNCTION gateway_instances_void_pending() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    NEW.pending_key_hash := NULL;
    NEW.pending_key_prefix := NULL;
    NEW.pending_key_expires_at := NULL;
    NEW.pending_command_id := NULL;
    RETURN NEW;
END $$;
CREATE TRIGGER gateway_instances_void_pending BEFORE UPDATE OF api_key_hash ON gateway_instances
    FOR EACH ROW WHEN (NEW.api_key_hash IS DISTINCT FROM OLD.api_key_hash AND OLD.pending_key_hash IS NOT NULL
                       AND NEW.pending_key_hash IS NOT DISTINCT FROM OLD.pending_key_hash)
    EXECUTE FUNCTION gateway_instances_void_pending();

-- The gateway lookup of 00001, now also aware of pending keys: a current
-- key authenticates (discarding a pending key whose overlap has passed); a
-- pending key is promoted by its first use, which also completes the
-- rotate_api_key command that requested it. Same signature and grants as
-- before; still the one lookup that crosses organisations, acting as ADMIN
-- for its own statements only.
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
            -- The overlap has passed and the gateway still uses its old
            -- key: it never saved the new one.
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
            -- A concurrent request may have promoted it a moment ago.
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
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP TRIGGER gateway_instances_void_pending ON gateway_instances;
DROP FUNCTION gateway_instances_void_pending();
CREATE OR REPLACE FUNCTION gateway_by_api_key_hash(p_hash bytea)
RETURNS TABLE (gateway_id uuid, organization_id bigint, status text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    RETURN QUERY
        SELECT g.id, g.organization_id, g.status
        FROM public.gateway_instances g
        WHERE g.api_key_hash = p_hash AND g.revoked_at IS NULL;
    PERFORM set_config('app.current_role', saved, true);
END $$;
ALTER TABLE gateway_instances
    DROP CONSTRAINT gateway_instances_pending_key,
    DROP COLUMN key_command_id,
    DROP COLUMN key_rotated_at,
    DROP COLUMN pending_command_id,
    DROP COLUMN pending_key_expires_at,
    DROP COLUMN pending_key_prefix,
    DROP COLUMN pending_key_hash;
-- +goose StatementEnd
