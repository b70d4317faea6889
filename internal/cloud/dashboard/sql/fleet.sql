-- The fleet routes (fleet.go): gateways, their status and agents,
-- devices and the device-adapter catalogue. Row-level security limits
-- every statement to the caller's organisation (all of them for a
-- platform ADMIN); lists are keyset pages, never OFFSET.

-- name: ListGateways :many
-- One page of gateways in registration order, after the cursor (the
-- created_at and id of the previous page's last one), optionally of one
-- status.
SELECT id, organization_id, serial, name, status, version, last_seen_at, api_key_prefix, key_rotated_at,
       created_at, updated_at, revoked_at
FROM gateway_instances
WHERE (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(after_at)::timestamptz IS NULL
       OR (created_at, id) > (sqlc.narg(after_at)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY created_at, id
LIMIT @max_rows;

-- name: GetGateway :one
SELECT id, organization_id, serial, name, status, version, last_seen_at, api_key_prefix, key_rotated_at,
       created_at, updated_at, revoked_at
FROM gateway_instances WHERE id = $1;

-- name: LatestGatewaySnapshot :one
-- The gateway's latest status snapshot (its last heartbeat).
SELECT "timestamp", cpu_usage, memory_usage, disk_usage, buffer_usage, queue_depth, connected_agents, versions, network_status
FROM gateway_status_snapshots WHERE gateway_id = $1
ORDER BY "timestamp" DESC LIMIT 1;

-- name: GatewayAgents :many
-- The agents enrolled through a gateway and not revoked, online first.
SELECT id, gateway_id, agent_uid, computer_name, status, last_seen_at, policy_version, version, created_at, enrolled_at, revoked_at
FROM agent_instances WHERE gateway_id = $1 AND revoked_at IS NULL
ORDER BY status = 'online' DESC, agent_uid
LIMIT @max_rows;

-- name: ListAgents :many
-- One page of agents in order of first contact, after the cursor,
-- optionally of one gateway and one status.
SELECT id, gateway_id, agent_uid, computer_name, status, last_seen_at, policy_version, version, created_at, enrolled_at, revoked_at
FROM agent_instances
WHERE (sqlc.narg(gateway_id)::uuid IS NULL OR gateway_id = sqlc.narg(gateway_id))
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(after_at)::timestamptz IS NULL
       OR (created_at, id) > (sqlc.narg(after_at)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY created_at, id
LIMIT @max_rows;

-- name: GetAgent :one
SELECT id, gateway_id, agent_uid, computer_name, status, last_seen_at, policy_version, version, created_at, enrolled_at, revoked_at
FROM agent_instances WHERE id = $1;

-- name: ListDevices :many
-- One page of devices by id, after the cursor, optionally of one gateway.
SELECT id, organization_id, gateway_id, name, adapter_type, host, port, serial, config, status, last_seen_at, created_at, updated_at, row_version
FROM devices
WHERE (sqlc.narg(gateway_id)::uuid IS NULL OR gateway_id = sqlc.narg(gateway_id))
  AND id > @after_id
ORDER BY id
LIMIT @max_rows;

-- name: GetDevice :one
SELECT id, organization_id, gateway_id, name, adapter_type, host, port, serial, config, status, last_seen_at, created_at, updated_at, row_version
FROM devices WHERE id = $1;

-- name: CreateDevice :one
INSERT INTO devices (organization_id, gateway_id, name, adapter_type, host, port, serial, config)
VALUES (@organization_id, sqlc.narg(gateway_id), @name, @adapter_type, sqlc.narg(host), sqlc.narg(port), sqlc.narg(serial), @config)
RETURNING id, organization_id, gateway_id, name, adapter_type, host, port, serial, config, status, last_seen_at, created_at, updated_at, row_version;

-- name: UpdateDevice :one
-- Replace a device's settings if it is still at the version the caller
-- read: no row when it changed since (app.bump_version() increments
-- row_version and sets updated_at).
UPDATE devices
   SET gateway_id = sqlc.narg(gateway_id), name = @name, adapter_type = @adapter_type, host = sqlc.narg(host),
       port = sqlc.narg(port), serial = sqlc.narg(serial), config = @config
 WHERE id = @id AND row_version = @row_version
RETURNING id, organization_id, gateway_id, name, adapter_type, host, port, serial, config, status, last_seen_at, created_at, updated_at, row_version;

-- name: DeleteDevice :one
-- Delete a device still at the version the caller read.
DELETE FROM devices WHERE id = @id AND row_version = @row_version RETURNING organization_id;

-- name: DeviceGateway :one
-- The organisation and revocation of a gateway a device is to be attached
-- to (no row: no such gateway the caller may see).
SELECT organization_id, revoked_at FROM gateway_instances WHERE id = $1;

-- name: ActiveAdapter :one
-- The newest active adapter of a device type: its configuration schema
-- validates the config of a device of that type.
SELECT id, type, vendor, version, config_schema
FROM device_adapters WHERE type = $1 AND is_active
ORDER BY created_at DESC, version DESC LIMIT 1;

-- name: ListAdapters :many
-- The device-adapter catalogue (platform-wide, small).
SELECT id, type, vendor, version, config_schema, is_active, created_at
FROM device_adapters ORDER BY type, version;

-- name: AuditAllowed :exec
-- A change the caller made: app.audit() stamps user and actor from the
-- verified tenant context (organisation NULL: the caller's own).
SELECT app.audit(sqlc.narg(organization_id)::bigint, @action::text, @resource_type::text, @resource_id::text, 'allowed', @details::jsonb);
