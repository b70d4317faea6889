-- name: MarkOnline :exec
-- A gateway was heard from: online, seen now, its version if it said one.
UPDATE gateway_instances SET status = 'online', last_seen_at = now(), updated_at = now(),
    version = coalesce(nullif(@version::text, ''), version) WHERE id = @id;

-- name: InsertSnapshot :exec
-- A heartbeat's snapshot of the gateway's state.
INSERT INTO gateway_status_snapshots (organization_id, gateway_id, "timestamp", cpu_usage, memory_usage,
    disk_usage, buffer_usage, queue_depth, connected_agents, versions) VALUES (@organization_id, @gateway_id, now(), @cpu_usage::numeric, @memory_usage::numeric, @disk_usage::numeric,
    @buffer_usage::numeric, @queue_depth::bigint, @connected_agents::bigint, @versions);
