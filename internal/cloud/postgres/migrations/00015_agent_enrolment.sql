-- Agents prove who they are (issue 11, deliverable 4). Each organisation
-- has an agent enrolment secret, delivered with the agent installer and
-- stored here only as its SHA-256 (the secret holds 256 random bits, so the
-- hash is not searchable); gateways fetch this hash as the verifier with
-- which they check enrolments, and never see the secret. Rotating replaces
-- it (agents already enrolled keep their own credentials).
--
-- agent_instances gains enrolled_at (set when a gateway reports an
-- enrolment) and revoked_at (set by a revocation, cleared by a later
-- enrolment); the revoke_agent gateway command makes the gateway drop the
-- agent's credential. Payload {"agent_uid": "..."}, result
-- {"agent_uid": "...", "revoked": bool}.

-- +goose Up
ALTER TABLE organizations
    ADD COLUMN enrolment_secret_hash       bytea CHECK (length(enrolment_secret_hash) = 32),
    ADD COLUMN enrolment_secret_rotated_at timestamptz;

ALTER TABLE agent_instances
    ADD COLUMN enrolled_at timestamptz,
    ADD COLUMN revoked_at  timestamptz;

ALTER TABLE gateway_commands DROP CONSTRAINT gateway_commands_type_check;
ALTER TABLE gateway_commands ADD CONSTRAINT gateway_commands_type_check
    CHECK (type IN ('policy_update', 'restart_agent', 'device_command', 'rotate_api_key', 'replay_dead_letters', 'revoke_agent'));

-- +goose Down
DELETE FROM gateway_commands WHERE type = 'revoke_agent';
ALTER TABLE gateway_commands DROP CONSTRAINT gateway_commands_type_check;
ALTER TABLE gateway_commands ADD CONSTRAINT gateway_commands_type_check
    CHECK (type IN ('policy_update', 'restart_agent', 'device_command', 'rotate_api_key', 'replay_dead_letters'));
ALTER TABLE agent_instances DROP COLUMN revoked_at, DROP COLUMN enrolled_at;
ALTER TABLE organizations DROP COLUMN enrolment_secret_rotated_at, DROP COLUMN enrolment_secret_hash;
