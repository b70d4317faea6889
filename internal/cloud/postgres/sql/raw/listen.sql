-- Hand-written (loaded by sqlfile, not compiled by sqlc): LISTEN names its
-- channel as an identifier, which no statement parameter can carry (sqlc
-- compiles only a LISTEN of a fixed channel, and Listen takes any).
-- listen.go substitutes the channel, quoted as an identifier
-- (pgx.Identifier), for %s.

-- name: Listen :exec
LISTEN %s;
