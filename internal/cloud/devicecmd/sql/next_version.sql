-- name: NextVersion :one
SELECT nextval('devices_update_version')::bigint AS version;
