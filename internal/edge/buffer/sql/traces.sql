-- Trace contexts of buffered events (issue 19; schema.sql explains).

-- name: InsertTraceContext :exec
INSERT INTO trace_contexts (first_seq, last_seq, class, trace_parent, created_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (first_seq) DO NOTHING;

-- name: SelectTraceContexts :many
-- The contexts of the runs overlapping a batch's sequence range, oldest
-- first, at most a limit.
SELECT trace_parent FROM trace_contexts
WHERE class = sqlc.arg(class) AND first_seq <= sqlc.arg(last_seq) AND last_seq >= sqlc.arg(first_seq)
ORDER BY first_seq
LIMIT sqlc.arg(max_rows);

-- name: DeleteTraceContexts :execrows
-- The contexts of runs wholly acknowledged, and any older than a cutoff.
DELETE FROM trace_contexts
WHERE (class = sqlc.arg(class) AND last_seq <= sqlc.arg(through_seq)) OR created_at < sqlc.arg(before);

-- name: AnyTraceContexts :one
SELECT EXISTS (SELECT 1 FROM trace_contexts) AS any;
