-- name: Sweep :many
-- Redeliver, fail and expire across organisations (gateway_commands_sweep).
SELECT s.id::uuid AS id, s.gateway_id::uuid AS gateway_id, s.status::text AS status
FROM gateway_commands_sweep(@backoff::interval) AS s(id, gateway_id, status);
