-- name: Insert :one
INSERT INTO device_commands (id, organization_id, device_id, gateway_id, adapter_type, command_type, payload,
                             gateway_command_id, created_by, expires_at)
VALUES (@id, @organization_id, @device_id, @gateway_id, @adapter_type, @command_type, @payload,
        @gateway_command_id, @created_by, @expires_at)
RETURNING id, organization_id, device_id, gateway_id, gateway_command_id, adapter_type, command_type, payload, status,
          response, error, created_by, created_at, delivered_at, completed_at, expires_at;
