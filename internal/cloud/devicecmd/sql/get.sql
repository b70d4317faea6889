-- name: Get :one
SELECT id, organization_id, device_id, gateway_id, gateway_command_id, adapter_type, command_type, payload, status,
       response, error, created_by, created_at, delivered_at, completed_at, expires_at
FROM device_commands WHERE id = $1;
