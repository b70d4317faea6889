-- Exactly-once ingest (DESIGN.md §2 "Data up"): the batch idempotency
-- records, per-gateway sequence accounting for gap detection, the drop
-- reports gateways send up, and the provisioning exchange.

-- +goose Up
-- +goose StatementBegin
-- One row per (gateway, Idempotency-Key): the hash of the request body, and
-- once done, the stored answer that a replay returns. A row stays in_flight
-- while its request is being processed; locked_until lets a retry take over
-- a row whose request died with its process.
CREATE TABLE ingest_batches (
    organization_id bigint NOT NULL,
    gateway_id      uuid NOT NULL,
    idempotency_key uuid NOT NULL,
    endpoint        text NOT NULL CHECK (endpoint IN ('logs', 'screenshots', 'device-events')),
    request_hash    bytea NOT NULL CHECK (length(request_hash) = 32),
    status          text NOT NULL CHECK (status IN ('in_flight', 'done')),
    locked_until    timestamptz NOT NULL,
    response_status integer,
    response_body   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    PRIMARY KEY (gateway_id, idempotency_key),
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateway_instances(organization_id, id) ON DELETE CASCADE
);
CREATE INDEX ingest_batches_created ON ingest_batches (created_at);

-- Per-gateway accounting of sequence numbers: every event carries the
-- gateway's next sequence number, so max_seq - events_accepted -
-- events_dropped is the number of events neither received nor reported lost.
CREATE TABLE gateway_ingest_stats (
    organization_id bigint NOT NULL,
    gateway_id      uuid PRIMARY KEY,
    max_seq         bigint NOT NULL DEFAULT 0,
    events_accepted bigint NOT NULL DEFAULT 0,
    events_dropped  bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateway_instances(organization_id, id) ON DELETE CASCADE
);

-- What gateways report they discarded (retention, disk pressure, ...).
CREATE TABLE gateway_drop_reports (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL,
    gateway_id      uuid NOT NULL,
    reason          text NOT NULL CHECK (length(reason) <= 64),
    class           text NOT NULL CHECK (length(class) <= 32),
    count           bigint NOT NULL CHECK (count > 0),
    first_at        timestamptz,
    last_at         timestamptz,
    received_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateway_instances(organization_id, id) ON DELETE CASCADE
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ingest_batches', 'gateway_ingest_stats', 'gateway_drop_reports'] LOOP
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

GRANT SELECT, INSERT, UPDATE, DELETE ON ingest_batches TO staff_ingest;
GRANT SELECT, INSERT, UPDATE ON gateway_ingest_stats TO staff_ingest;
GRANT SELECT, INSERT ON gateway_drop_reports TO staff_ingest;
GRANT SELECT ON gateway_ingest_stats, gateway_drop_reports TO staff_dashboard;

-- The provisioning exchange: a gateway presents its organisation, serial and
-- one-time token; when they match an unused, unexpired token, the token is
-- spent, the gateway's API key hash is set, and the gateway id returned.
-- Otherwise NULL, whatever the reason (no oracle for token guessing).
CREATE FUNCTION gateway_provision(p_org bigint, p_serial text, p_token_hash bytea, p_key_hash bytea, p_key_prefix text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$
DECLARE
    saved text := coalesce(current_setting('app.current_role', true), '');
    gw uuid;
BEGIN
    PERFORM set_config('app.current_role', 'ADMIN', true);
    UPDATE public.provisioning_tokens t
       SET used_at = now()
      FROM public.gateway_instances g
     WHERE t.token_hash = p_token_hash
       AND t.organization_id = p_org
       AND t.used_at IS NULL
       AND t.expires_at > now()
       AND g.id = t.gateway_id
       AND g.serial = p_serial
       AND g.revoked_at IS NULL
    RETURNING t.gateway_id INTO gw;
    IF gw IS NOT NULL THEN
        UPDATE public.gateway_instances
           SET api_key_hash = p_key_hash, api_key_prefix = p_key_prefix, status = 'offline', updated_at = now()
         WHERE id = gw;
    END IF;
    PERFORM set_config('app.current_role', saved, true);
    RETURN gw;
END $$;
REVOKE ALL ON FUNCTION gateway_provision(bigint, text, bytea, bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateway_provision(bigint, text, bytea, bytea, text) TO staff_ingest;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION gateway_provision(bigint, text, bytea, bytea, text);
DROP TABLE gateway_drop_reports, gateway_ingest_stats, ingest_batches;
-- +goose StatementEnd
