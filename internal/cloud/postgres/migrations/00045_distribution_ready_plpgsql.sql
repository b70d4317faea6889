-- policy_distributions_ready() as PL/pgSQL (issue 17): the Agent API polls
-- it every 250 ms in every replica, and as an SQL-language definer function
-- (never inlined) its query was planned anew on every call: ~0.8 ms of
-- planning against ~0.15 ms of execution on a small database, 2–10 ms a call
-- on the loaded benchmark machine. PL/pgSQL keeps the plan for the session.
-- Same query, same result, same privileges (CREATE OR REPLACE keeps them);
-- the OUT columns id and organization_id are PL/pgSQL variables, so every
-- column reference in the query is qualified and column names win.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION policy_distributions_ready() RETURNS TABLE (id uuid, organization_id bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
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
                         WHERE t.distribution_id = d.id AND c.status = 'completed' AND t.restart_command_id IS NULL)));
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION policy_distributions_ready() RETURNS TABLE (id uuid, organization_id bigint)
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
-- +goose StatementEnd
