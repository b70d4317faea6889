-- Hand-written (loaded by sqlfile, not compiled by sqlc): DDL whose
-- database name is an identifier chosen at run time, which no statement
-- parameter can carry. up.go substitutes the name, quoted as an identifier
-- (pgx.Identifier), for %s.

-- name: CreateDatabase :exec
CREATE DATABASE %s;
