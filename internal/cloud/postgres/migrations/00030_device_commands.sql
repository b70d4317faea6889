-- Device commands and the device list (issue 16).
--
-- * gateway_commands accepts 'devices_update' (the gateway's whole device
--   list, protocol.DevicesPayload).
-- * A device_commands row names the device_command gateway command that
--   carries it (gateway_command_id; same organisation and gateway, enforced
--   by a composite foreign key), and the database keeps the two consistent:
--   device_commands_follow(), a trigger owned by the schema owner, moves the
--   row with its gateway command in the same statement — delivered when the
--   command is delivered (pending again on a redelivery), completed or
--   failed per the gateway's DeviceCommandResult.status when the command is
--   completed (response = the result), failed / expired / cancelled with the
--   reason (error) when the command is. A final row never changes again.
-- * Sending a device command is an HR task as well as an administrator's:
--   role_insert on device_commands admits whoever sees the whole
--   organisation, and role_insert on gateway_commands admits them for
--   device_command commands only (every other type stays with ADMIN and
--   ORG_ADMIN).
-- * devices_update_version numbers the device lists: strictly increasing
--   (the sender takes it under a per-gateway transaction lock, so a later
--   list never carries a smaller number).

-- +goose Up
-- +goose StatementBegin
ALTER TABLE gateway_commands DROP CONSTRAINT gateway_commands_type_check;
ALTER TABLE gateway_commands ADD CONSTRAINT gateway_commands_type_check
    CHECK (type IN ('policy_update', 'restart_agent', 'device_command', 'rotate_api_key', 'replay_dead_letters', 'revoke_agent',
                    'devices_update'));
CREATE UNIQUE INDEX gateway_commands_organization_gateway_id ON gateway_commands (organization_id, gateway_id, id);
-- Pending lists of a gateway, which a newer list cancels.
CREATE INDEX gateway_commands_pending_type ON gateway_commands (gateway_id, type) WHERE status = 'pending';

ALTER TABLE device_commands
    ADD COLUMN gateway_command_id uuid,
    ADD COLUMN error text CHECK (length(error) <= 2000),
    ADD COLUMN created_by text CHECK (length(created_by) <= 255),
    ADD COLUMN delivered_at timestamptz,
    ADD COLUMN expires_at timestamptz,
    ADD CONSTRAINT device_commands_gateway_command_fkey FOREIGN KEY (organization_id, gateway_id, gateway_command_id)
        REFERENCES gateway_commands (organization_id, gateway_id, id) ON DELETE SET NULL (gateway_command_id);
CREATE UNIQUE INDEX device_commands_gateway_command ON device_commands (gateway_command_id);
CREATE INDEX device_commands_device_created ON device_commands (device_id, created_at DESC, id DESC);

CREATE FUNCTION device_commands_follow() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
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
-- +goose StatementEnd
REVOKE EXECUTE ON FUNCTION device_commands_follow() FROM PUBLIC;
CREATE TRIGGER device_commands_follow AFTER UPDATE OF status ON gateway_commands
    FOR EACH ROW WHEN (NEW.type = 'device_command' AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION device_commands_follow();

ALTER POLICY role_insert ON device_commands WITH CHECK ((SELECT app.sees_whole_organization()));
ALTER POLICY role_insert ON gateway_commands
    WITH CHECK ((SELECT app.writes_organization()) OR (type = 'device_command' AND (SELECT app.sees_whole_organization())));

CREATE SEQUENCE devices_update_version AS bigint;
GRANT USAGE ON SEQUENCE devices_update_version TO staff_dashboard, staff_admin;

-- +goose Down
DROP SEQUENCE devices_update_version;
ALTER POLICY role_insert ON gateway_commands WITH CHECK ((SELECT app.writes_organization()));
ALTER POLICY role_insert ON device_commands WITH CHECK ((SELECT app.writes_organization()));
DROP TRIGGER device_commands_follow ON gateway_commands;
DROP FUNCTION device_commands_follow();
DROP INDEX device_commands_device_created;
DROP INDEX device_commands_gateway_command;
ALTER TABLE device_commands DROP CONSTRAINT device_commands_gateway_command_fkey,
    DROP COLUMN gateway_command_id, DROP COLUMN error, DROP COLUMN created_by, DROP COLUMN delivered_at, DROP COLUMN expires_at;
DROP INDEX gateway_commands_pending_type;
DROP INDEX gateway_commands_organization_gateway_id;
DELETE FROM gateway_commands WHERE type = 'devices_update';
ALTER TABLE gateway_commands DROP CONSTRAINT gateway_commands_type_check;
ALTER TABLE gateway_commands ADD CONSTRAINT gateway_commands_type_check
    CHECK (type IN ('policy_update', 'restart_agent', 'device_command', 'rotate_api_key', 'replay_dead_letters', 'revoke_agent'));
