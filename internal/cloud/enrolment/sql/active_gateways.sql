-- The organisation's gateways that can receive a command.
SELECT id FROM gateway_instances WHERE revoked_at IS NULL ORDER BY id;
