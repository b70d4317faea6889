-- The replay_dead_letters command (issue 10): an operator moves a gateway's
-- dead letters (events set aside because the cloud refused them for good or
-- kept failing on them alone) back into its upload streams. Payload
-- {"event_ids": [...]} (optional; none means all), result {"replayed": n}.

-- +goose Up
ALTER TABLE gateway_commands DROP CONSTRAINT gateway_commands_type_check;
ALTER TABLE gateway_commands ADD CONSTRAINT gateway_commands_type_check
    CHECK (type IN ('policy_update', 'restart_agent', 'device_command', 'rotate_api_key', 'replay_dead_letters'));

-- +goose Down
DELETE FROM gateway_commands WHERE type = 'replay_dead_letters';
ALTER TABLE gateway_commands DROP CONSTRAINT gateway_commands_type_check;
ALTER TABLE gateway_commands ADD CONSTRAINT gateway_commands_type_check
    CHECK (type IN ('policy_update', 'restart_agent', 'device_command', 'rotate_api_key'));
