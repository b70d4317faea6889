-- The gateways of one organisation ($1) that can receive a command. The
-- organisation is named explicitly: an ADMIN context sees every
-- organisation's rows.
SELECT id FROM gateway_instances WHERE organization_id = $1 AND revoked_at IS NULL ORDER BY id;
