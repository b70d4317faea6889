-- One NOTIFY per gateway per statement for new commands (issue 17, part 3):
-- the enqueues are group-committed (commandqueue gathers concurrent Enqueue
-- calls into one multi-row INSERT), so the wake-up of the Agent API replica
-- holding a gateway's socket is sent once per gateway of the statement from
-- its transition table, as 00035 stages the dashboard events, instead of
-- once per row. A transition table cannot go with a column list or two
-- events, so the trigger is split: new commands per statement here; a
-- command put back to pending (the sweep's redelivery, UPDATE OF status)
-- keeps the per-row trigger, renamed. PostgreSQL folds repeated identical
-- notifications of one transaction either way; the per-row call was the
-- cost, and the per-transaction commit its queue lock serialises is what
-- the group commit removes.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION gateway_commands_notify_inserted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM pg_notify('gateway_commands', g.gateway_id::text)
       FROM (SELECT DISTINCT n.gateway_id FROM new_rows n WHERE n.status = 'pending') g;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION gateway_commands_notify_inserted() FROM PUBLIC;

DROP TRIGGER gateway_commands_notify ON gateway_commands;
CREATE TRIGGER gateway_commands_notify_insert AFTER INSERT ON gateway_commands
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gateway_commands_notify_inserted();
CREATE TRIGGER gateway_commands_notify_update AFTER UPDATE OF status ON gateway_commands
    FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION gateway_commands_notify();
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP TRIGGER gateway_commands_notify_update ON gateway_commands;
DROP TRIGGER gateway_commands_notify_insert ON gateway_commands;
CREATE TRIGGER gateway_commands_notify AFTER INSERT OR UPDATE OF status ON gateway_commands
    FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION gateway_commands_notify();
DROP FUNCTION gateway_commands_notify_inserted();
-- +goose StatementEnd
