-- Mark an agent revoked in one organisation ($1 organisation, $2 agent
-- uid). The organisation is named explicitly: an ADMIN context sees every
-- organisation's rows.
UPDATE agent_instances SET revoked_at = now() WHERE organization_id = $1 AND agent_uid = $2;
