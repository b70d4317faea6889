-- name: MarkOnline :exec
-- A gateway was heard from: online, seen now, its version if it said one.
UPDATE gateway_instances SET status = 'online', last_seen_at = now(), updated_at = now(),
    version = coalesce(nullif(@version::text, ''), version) WHERE id = @id;

-- name: InsertSnapshot :exec
-- A heartbeat's snapshot of the gateway's state.
INSERT INTO gateway_status_snapshots (organization_id, gateway_id, "timestamp", cpu_usage, memory_usage,
    disk_usage, buffer_usage, queue_depth, connected_agents, versions) VALUES (@organization_id, @gateway_id, now(), @cpu_usage::numeric, @memory_usage::numeric, @disk_usage::numeric,
    @buffer_usage::numeric, @queue_depth::bigint, @connected_agents::bigint, @versions);

-- name: DeviceStatus :execrows
-- A heartbeat's device states, into the devices rows of this gateway only
-- (a device id of another gateway or organisation matches nothing). A last
-- event at the epoch means none. Status and last_seen_at only: the
-- row_version trigger fires on the settings columns (serial among them)
-- named in a SET, so the serial is DeviceSerial's, apart.
UPDATE devices d SET status = s.status,
    last_seen_at = CASE WHEN s.status = 'online' THEN now() ELSE coalesce(s.last_event_at, d.last_seen_at) END
FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@statuses::text[]) AS status,
             nullif(unnest(@last_event_ats::timestamptz[]), 'epoch') AS last_event_at) s
WHERE d.id = s.id AND d.gateway_id = @gateway_id;

-- name: DeviceSerial :execrows
-- The serials devices reported, into this gateway's rows that have none
-- (a new serial moves the row's version: the ETag of what the dashboard
-- shows changes).
UPDATE devices d SET serial = s.serial
FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@serials::text[]) AS serial) s
WHERE d.id = s.id AND d.gateway_id = @gateway_id AND nullif(d.serial, '') IS NULL AND s.serial <> '';
