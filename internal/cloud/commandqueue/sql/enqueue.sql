INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, priority, max_attempts, expires_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval, $8)
RETURNING id, created_at, expires_at
