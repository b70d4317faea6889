-- name: GatewayOrganization :one
-- The organisation of a gateway that is not revoked (another
-- organisation's gateway is invisible under RLS).
SELECT organization_id FROM gateway_instances WHERE id = $1 AND revoked_at IS NULL;
