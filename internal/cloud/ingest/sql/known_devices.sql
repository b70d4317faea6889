-- name: KnownDevices :many
SELECT id FROM devices WHERE id = ANY(@ids::bigint[]);
