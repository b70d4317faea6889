-- name: ActiveGateways :many
-- The gateways of one organisation that can receive a command. The
-- organisation is named explicitly: an ADMIN context sees every
-- organisation's rows.
SELECT id FROM gateway_instances WHERE organization_id = @organization_id AND revoked_at IS NULL ORDER BY id;
