-- The live events a client reads (liveevents.go), always under its own
-- tenant context: row-level security alone decides what it sees
-- (migration 00024: its organisation's rows, for ORG_ADMIN, HR and ADMIN).

-- name: EventsAfter :many
-- The events after id, in id order (ids are in commit order), of the
-- given kinds (every kind when none is given).
SELECT id, kind, subject, data FROM dashboard_events
 WHERE id > @after AND (coalesce(cardinality(@kinds::text[]), 0) = 0 OR kind = ANY (@kinds::text[]))
 ORDER BY id
 LIMIT @max_rows;

-- name: Bounds :one
-- The first and last id the log holds, every organisation's (two numbers,
-- app.dashboard_events_bounds, SECURITY DEFINER).
SELECT b.first_id::bigint AS first_id, b.last_id::bigint AS last_id
  FROM app.dashboard_events_bounds() AS b(first_id, last_id);

-- name: Prune :one
-- Deletes events older than 24 hours, at most 10,000 (app.dashboard_events_prune).
SELECT app.dashboard_events_prune()::integer AS deleted;

-- name: Publish :one
-- Moves up to max_rows staged changes into the log and appends the progress
-- of the distributions they touch (app.dashboard_events_publish, SECURITY
-- DEFINER, migration 00035); returns how many staged rows it moved.
SELECT app.dashboard_events_publish(@max_rows::integer)::integer AS moved;
