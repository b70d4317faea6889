-- Policy distribution (DESIGN.md §2 "Control down"): one policy_update
-- command per target gateway, optionally staged (a canary share first, the
-- rest once every canary applied the version), with progress per gateway.

-- +goose Up
-- +goose StatementBegin
CREATE TABLE policy_distributions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id bigint NOT NULL,
    policy_id       bigint NOT NULL,
    version_id      uuid NOT NULL,
    canary_percent  integer NOT NULL DEFAULT 0 CHECK (canary_percent BETWEEN 0 AND 100),
    stage           text NOT NULL DEFAULT 'canary' CHECK (stage IN ('canary', 'full', 'done', 'halted')),
    created_by      text NOT NULL CHECK (length(created_by) <= 255),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, policy_id) REFERENCES policies(organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, version_id) REFERENCES policy_versions(organization_id, id) ON DELETE CASCADE
);

CREATE TABLE policy_distribution_targets (
    distribution_id    uuid NOT NULL,
    organization_id    bigint NOT NULL,
    gateway_id         uuid NOT NULL,
    canary             boolean NOT NULL DEFAULT false,
    command_id         uuid REFERENCES gateway_commands(id) ON DELETE SET NULL,
    restart_command_id uuid REFERENCES gateway_commands(id) ON DELETE SET NULL,
    PRIMARY KEY (distribution_id, gateway_id),
    FOREIGN KEY (organization_id, distribution_id) REFERENCES policy_distributions(organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateway_instances(organization_id, id) ON DELETE CASCADE
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['policy_distributions', 'policy_distribution_targets'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$
            CREATE POLICY tenant_isolation ON %I
            USING (
                organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
                OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
            )$p$, t);
    END LOOP;
END $$;

GRANT SELECT, INSERT, UPDATE ON policy_distributions, policy_distribution_targets TO staff_dashboard, staff_ingest;
GRANT INSERT ON gateway_commands TO staff_ingest;

-- Distributions still moving (canary or full), across organisations, for
-- the Agent API's advancing loop.
CREATE FUNCTION policy_distributions_active() RETURNS TABLE (id uuid, organization_id bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    RETURN QUERY SELECT d.id, d.organization_id FROM public.policy_distributions d WHERE d.stage IN ('canary', 'full');
    PERFORM set_config('app.current_role', saved, true);
END $$;
REVOKE ALL ON FUNCTION policy_distributions_active() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION policy_distributions_active() TO staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION policy_distributions_active();
REVOKE INSERT ON gateway_commands FROM staff_ingest;
DROP TABLE policy_distribution_targets, policy_distributions;
-- +goose StatementEnd
