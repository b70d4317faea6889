-- The Dashboard API's own statements (api.go): the audit row of a refused
-- access.

-- name: AuditDenied :exec
-- A denied access (role or row-level security): app.audit() stamps the
-- organisation, user and actor from the verified tenant context.
SELECT app.audit(NULL, @action::text, @resource_type::text, @resource_id::text, 'denied', @details::jsonb);
