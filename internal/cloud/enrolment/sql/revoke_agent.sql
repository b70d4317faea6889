-- Mark an agent revoked everywhere in the organisation ($1 agent uid).
UPDATE agent_instances SET revoked_at = now() WHERE agent_uid = $1;
