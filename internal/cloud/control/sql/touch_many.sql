-- name: MarkOnlineMany :exec
-- Several gateways were heard from (the hub's batched heartbeats): online,
-- seen now, each one's version if it said one (empty: unchanged). The
-- caller passes each gateway once.
UPDATE gateway_instances g SET status = 'online', last_seen_at = now(), updated_at = now(),
    version = coalesce(nullif(s.version, ''), g.version)
FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@versions::text[]) AS version) s
WHERE g.id = s.id;

-- name: InsertSnapshots :exec
-- Several heartbeats' snapshots of one organisation's gateways.
INSERT INTO gateway_status_snapshots (organization_id, gateway_id, "timestamp", cpu_usage, memory_usage,
    disk_usage, buffer_usage, queue_depth, connected_agents, versions)
SELECT @organization_id, s.gateway_id, now(), s.cpu, s.memory, s.disk, s.buffer, s.queue_depth, s.agents, s.versions
FROM (SELECT unnest(@gateway_ids::uuid[]) AS gateway_id, unnest(@cpu_usages::numeric[]) AS cpu,
             unnest(@memory_usages::numeric[]) AS memory, unnest(@disk_usages::numeric[]) AS disk,
             unnest(@buffer_usages::numeric[]) AS buffer, unnest(@queue_depths::bigint[]) AS queue_depth,
             unnest(@connected_agents::bigint[]) AS agents, unnest(@versions::jsonb[]) AS versions) s;
