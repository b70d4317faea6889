-- name: SelectPendingDrops :many
SELECT reason, class, pending, CAST(coalesce(first_at, 0) AS INTEGER) AS first_at,
       CAST(coalesce(last_at, 0) AS INTEGER) AS last_at
FROM drop_counters WHERE pending > 0 ORDER BY reason, class;

-- name: ClearPendingDrops :exec
UPDATE drop_counters SET pending = 0, first_at = NULL, last_at = NULL WHERE pending > 0;

-- name: CountPendingDrops :one
SELECT count(*) FROM drop_counters WHERE pending > 0;

-- name: AddDrops :exec
INSERT INTO drop_counters (reason, class, pending, total, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (reason, class) DO UPDATE SET
    pending  = pending + excluded.pending,
    total    = total + excluded.total,
    first_at = min(coalesce(first_at, excluded.first_at), excluded.first_at),
    last_at  = max(coalesce(last_at, excluded.last_at), excluded.last_at);

-- name: SelectDropTotals :many
SELECT reason, class, pending, total FROM drop_counters ORDER BY reason, class;
