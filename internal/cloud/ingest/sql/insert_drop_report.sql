-- name: InsertDropReport :exec
INSERT INTO gateway_drop_reports (organization_id, gateway_id, reason, class, count, first_at, last_at)
VALUES ($1, $2, $3, $4, $5, $6, $7);
