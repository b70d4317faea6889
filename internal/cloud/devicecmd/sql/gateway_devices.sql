-- name: GatewayDevices :many
-- The devices assigned to a gateway (the tenant's), in id order.
SELECT id, name, adapter_type, host, port, serial, config FROM devices WHERE gateway_id = @gateway_id ORDER BY id LIMIT @max_rows;
