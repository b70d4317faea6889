-- name: MarkOffline :many
-- Gateways silent for longer than the interval go offline
-- (gateways_mark_offline_after, across organisations); their ids.
SELECT gateways_mark_offline_after(@silence::interval)::uuid AS id;
