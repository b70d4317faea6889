-- Door terminals' state in the cloud (issue 16).
--
-- A gateway's heartbeat carries the state of each device it drives
-- (protocol.Heartbeat.devices); the Agent API's control hub, as the ingest
-- role in the gateway's tenant context, writes it into the devices rows of
-- that gateway: status (online, offline, error, auth_failed), last_seen_at
-- (when the device last answered), and the serial the device reported when
-- the row has none. Only these columns: the row's settings stay the
-- dashboard's (and its row_version, the ETag, does not move).

-- +goose Up
GRANT UPDATE (status, last_seen_at, serial) ON devices TO staff_ingest;

-- +goose Down
REVOKE UPDATE (status, last_seen_at, serial) ON devices FROM staff_ingest;
