-- name: Depth :many
-- The queue's pending and delivered commands by status and type over every
-- organisation, with the oldest's creation (gateway_commands_depth, 00042).
SELECT d.status::text AS status, d.type::text AS type, d.commands::bigint AS commands, d.oldest::timestamptz AS oldest
FROM gateway_commands_depth() AS d(status, type, commands, oldest);
