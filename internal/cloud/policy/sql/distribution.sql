-- Distributions of released versions to gateways (distribution.go).

-- name: VersionByNumber :one
SELECT v.organization_id, v.id FROM policy_versions v WHERE v.policy_id = $1 AND v.version = $2;

-- name: ActiveGateways :many
-- The organisation's gateways that are not revoked (named explicitly: an
-- ADMIN context sees every organisation's rows).
SELECT id FROM gateway_instances WHERE organization_id = $1 AND revoked_at IS NULL ORDER BY id;

-- name: InsertDistribution :one
-- trace_parent: the distributing request's traceparent (NULL untraced).
INSERT INTO policy_distributions (organization_id, policy_id, version_id, canary_percent, stage, created_by, trace_parent)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id;

-- name: InsertTargets :exec
-- A distribution's target rows in one statement (gateway_ids and canaries
-- are parallel arrays).
INSERT INTO policy_distribution_targets (distribution_id, organization_id, gateway_id, canary)
SELECT @distribution_id::uuid, @organization_id::bigint, unnest(@gateway_ids::uuid[]), unnest(@canaries::boolean[]);

-- name: Targets :many
-- A distribution's targets with their update command's state.
SELECT t.gateway_id, t.canary, t.command_id, t.restart_command_id, c.status, c.error
  FROM policy_distribution_targets t LEFT JOIN gateway_commands c ON c.id = t.command_id
 WHERE t.distribution_id = $1 ORDER BY t.gateway_id;

-- name: DistributionStage :one
SELECT d.stage, v.version, d.policy_id, d.canary_percent, d.created_at FROM policy_distributions d JOIN policy_versions v ON v.id = d.version_id WHERE d.id = $1;

-- name: LockDistribution :one
SELECT d.stage, v.policy_id, v.version, v.checksum, v.requires_restart, d.trace_parent
  FROM policy_distributions d JOIN policy_versions v ON v.id = d.version_id WHERE d.id = $1 FOR UPDATE OF d;

-- name: SetTargetCommands :exec
-- The update commands of a stage's targets in one statement (gateway_ids
-- and command_ids are parallel arrays).
UPDATE policy_distribution_targets t SET command_id = c.command_id
  FROM (SELECT unnest(@gateway_ids::uuid[]) AS gateway_id, unnest(@command_ids::uuid[]) AS command_id) AS c
 WHERE t.distribution_id = @distribution_id AND t.gateway_id = c.gateway_id;

-- name: SetTargetRestartCommands :exec
-- The restart commands of targets in one statement (parallel arrays).
UPDATE policy_distribution_targets t SET restart_command_id = c.command_id
  FROM (SELECT unnest(@gateway_ids::uuid[]) AS gateway_id, unnest(@command_ids::uuid[]) AS command_id) AS c
 WHERE t.distribution_id = @distribution_id AND t.gateway_id = c.gateway_id;

-- name: SetStage :exec
UPDATE policy_distributions SET stage = @stage, updated_at = now() WHERE id = @id;

-- name: ActiveDistributions :many
-- Every organisation's active distributions (policy_distributions_active,
-- SECURITY DEFINER).
SELECT a.id::uuid AS id, a.organization_id::bigint AS organization_id
  FROM policy_distributions_active() AS a(id, organization_id);

-- name: ReadyDistributions :many
-- Every organisation's distributions an advance would move now
-- (policy_distributions_ready, SECURITY DEFINER, migration 00036).
SELECT r.id::uuid AS id, r.organization_id::bigint AS organization_id
  FROM policy_distributions_ready() AS r(id, organization_id);
