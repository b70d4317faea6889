-- The distributions that an advance would move now (issue 17): the Agent
-- API polls this every AdvanceInterval (250 ms) and advances only those, so
-- a stage follows its last acknowledgement within a fraction of a second
-- instead of waiting for a 2-second pass that read every target of every
-- active distribution.
--
-- The conditions are policy.Distributor.advanceTx's, target.status's
-- reading of a command (internal/cloud/policy/distribution.go): in the
-- canary stage, the canary targets; in the full stage, all of them. A
-- distribution is ready when a target of its stage has no command yet (the
-- advance sends it), when none of its stage's commands is still pending or
-- delivered (the stage is over: canary → full or halted, full → done), in
-- the canary stage when a canary failed (halt), and in the full stage of a
-- version that requires a restart when a target applied it and has no
-- restart command yet. Each test is an EXISTS that stops at its first row.
-- An advance that finds nothing to do is harmless (advanceTx is idempotent),
-- so the function may err only towards listing; the Agent API also
-- advances every active distribution every 30 s whatever this says.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION policy_distributions_ready() RETURNS TABLE (id uuid, organization_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
    SELECT d.id, d.organization_id
      FROM public.policy_distributions d JOIN public.policy_versions v ON v.id = d.version_id
     WHERE d.stage IN ('canary', 'full')
       AND (EXISTS (SELECT 1 FROM public.policy_distribution_targets t
                     WHERE t.distribution_id = d.id AND (d.stage = 'full' OR t.canary) AND t.command_id IS NULL)
            OR NOT EXISTS (SELECT 1 FROM public.policy_distribution_targets t
                             JOIN public.gateway_commands c ON c.id = t.command_id
                            WHERE t.distribution_id = d.id AND (d.stage = 'full' OR t.canary)
                              AND c.status IN ('pending', 'delivered'))
            OR (d.stage = 'canary' AND EXISTS (
                    SELECT 1 FROM public.policy_distribution_targets t
                      LEFT JOIN public.gateway_commands c ON c.id = t.command_id
                     WHERE t.distribution_id = d.id AND t.canary AND t.command_id IS NOT NULL
                       AND (c.id IS NULL OR c.status NOT IN ('pending', 'delivered', 'completed'))))
            OR (d.stage = 'full' AND v.requires_restart AND EXISTS (
                    SELECT 1 FROM public.policy_distribution_targets t
                      JOIN public.gateway_commands c ON c.id = t.command_id
                     WHERE t.distribution_id = d.id AND c.status = 'completed' AND t.restart_command_id IS NULL)))
$$;
REVOKE ALL ON FUNCTION policy_distributions_ready() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION policy_distributions_ready() TO staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION policy_distributions_ready();
-- +goose StatementEnd
