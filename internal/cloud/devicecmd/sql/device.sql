-- name: Device :one
-- A device the tenant sees, with its gateway (NULL: none).
SELECT id, organization_id, gateway_id, adapter_type, serial FROM devices WHERE id = $1;
