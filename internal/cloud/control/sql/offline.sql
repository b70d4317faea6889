-- name: MarkOffline :exec
-- Gateways silent for longer than the interval go offline
-- (gateways_mark_offline_after, across organisations).
SELECT gateways_mark_offline_after(@silence::interval);
