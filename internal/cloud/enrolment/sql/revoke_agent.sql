-- name: RevokeAgent :exec
-- Mark an agent revoked in one organisation. The organisation is named
-- explicitly: an ADMIN context sees every organisation's rows.
UPDATE agent_instances SET revoked_at = now() WHERE organization_id = @organization_id AND agent_uid = @agent_uid;
