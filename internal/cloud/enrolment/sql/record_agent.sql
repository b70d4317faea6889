-- name: RecordAgent :exec
-- A gateway reports an agent enrolled at it (computer_name empty for
-- none). A re-enrolment clears a revocation: the agent proved again that
-- it holds the enrolment secret.
INSERT INTO agent_instances (organization_id, gateway_id, agent_uid, computer_name, status, last_seen_at, enrolled_at)
VALUES (@organization_id, @gateway_id, @agent_uid, NULLIF(@computer_name::text, ''), 'online', @enrolled_at, @enrolled_at)
ON CONFLICT (gateway_id, agent_uid) DO UPDATE
SET computer_name = COALESCE(EXCLUDED.computer_name, agent_instances.computer_name),
    enrolled_at = EXCLUDED.enrolled_at,
    last_seen_at = GREATEST(agent_instances.last_seen_at, EXCLUDED.last_seen_at),
    revoked_at = NULL
WHERE agent_instances.enrolled_at IS NULL OR agent_instances.enrolled_at <= EXCLUDED.enrolled_at;
