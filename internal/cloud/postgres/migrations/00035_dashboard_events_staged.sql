-- Live events without a global commit lock (issue 17): status changes are
-- staged by the transactions that make them, and published in commit-safe
-- order by one publisher at a time.
--
-- Before, 00024's deferred constraint triggers ran at the commit of every
-- transaction that changed a gateway's or a command's status, took the
-- transaction-level advisory lock 7428024, appended the events, counted the
-- distribution's progress and sent a NOTIFY: the lock (and the NOTIFY queue's
-- own lock) stayed held through the commit's WAL flush, so every such commit
-- in the database — enqueues, claims, acknowledgements, heartbeats marking a
-- gateway online — ran one after another. Under the queue_backlog scenario
-- 45–58 backends waited on it at once, and disabling the triggers took the
-- enqueue rate from 45–102/s to 170–181/s (docs/benchmarks.md).
--
-- Now:
--
--  - The sources stage: plain (not deferred) AFTER triggers append rows to
--    public.dashboard_events_staged, set-based per statement where a
--    statement changes many rows (transition tables on gateway_commands and
--    policy_distribution_targets: a claim or acknowledgement batch of 500
--    commands stages 500 rows in one INSERT … SELECT), row by row where
--    changes are rare and most updates change nothing the log shows
--    (gateway_instances, whose heartbeats update it all the time, and
--    policy_distributions). No lock, no NOTIFY: a source commit waits for
--    nothing but its own WAL flush, and concurrent commits flush together.
--    A row with a NULL kind is only a hint that a distribution's progress
--    must be counted again (a target or the stage changed).
--
--  - app.dashboard_events_publish() moves the staged rows into
--    public.dashboard_events under the advisory lock 7428024 (one publisher
--    at a time, across replicas), in staging order, in one statement; then,
--    for every distribution the moved rows touch, appends one progress row
--    with its counts (when they differ from its last row); then one NOTIFY
--    dashboard_events with the last id. The Dashboard API's live-events hub
--    calls it every liveevents.Config.PublishInterval (100 ms).
--
-- The readers' promise holds: an id never becomes visible after a higher
-- one, because ids are handed out only by the publisher, inside its
-- transaction, under a lock held to its end, and only for staged rows whose
-- transactions have committed (others are invisible to it and wait for the
-- next call). Two changes of one row are staged in the order they were
-- made (the second waits for the first's row lock, hence its commit), so a
-- subject's events keep their order. What changed: ids follow the order in
-- which changes were staged and published, not the order of the commits
-- (a transaction still open when the publisher runs gets higher ids than
-- later ones that committed first); a distribution's progress is appended
-- once per publish that touches it (the state the publisher counts), not
-- once per commit; events appear up to one publish interval after their
-- commit.

-- +goose Up
-- +goose StatementBegin
DROP TRIGGER dashboard_events_insert ON public.gateway_instances;
DROP TRIGGER dashboard_events_update ON public.gateway_instances;
DROP TRIGGER dashboard_events_insert ON public.gateway_commands;
DROP TRIGGER dashboard_events_update ON public.gateway_commands;
DROP TRIGGER dashboard_events_insert ON public.policy_distributions;
DROP TRIGGER dashboard_events_update ON public.policy_distributions;
DROP TRIGGER dashboard_events_insert ON public.policy_distribution_targets;
DROP TRIGGER dashboard_events_update ON public.policy_distribution_targets;
DROP FUNCTION app.dashboard_events_record();

-- Written only by the staging triggers and read only by the publisher
-- (both SECURITY DEFINER, run as the owner): no role is granted anything;
-- row-level security as on every tenant table.
CREATE TABLE public.dashboard_events_staged (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL,
    kind            text CHECK (kind IN ('gateway.status', 'command.status')),
    subject         text NOT NULL,
    data            jsonb NOT NULL DEFAULT '{}',
    -- The command whose status moved (its distribution, if any, is found by
    -- the publisher), or the distribution whose targets or stage changed.
    command_id      uuid,
    distribution_id uuid,
    created_at      timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE public.dashboard_events_staged ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.dashboard_events_staged FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.dashboard_events_staged USING (
    organization_id = (SELECT app.org_id()) OR (SELECT app.all_organizations())
);

-- Gateways: row by row (heartbeats update the table all the time; the
-- triggers fire only on a status that changes).
CREATE FUNCTION app.dashboard_events_stage_gateway() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    prev text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        prev := OLD.status;
    END IF;
    INSERT INTO public.dashboard_events_staged (organization_id, kind, subject, data)
    VALUES (NEW.organization_id, 'gateway.status', NEW.id::text,
            jsonb_build_object('gateway_id', NEW.id, 'status', NEW.status, 'previous', prev));
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION app.dashboard_events_stage_gateway() FROM PUBLIC;
CREATE TRIGGER dashboard_events_insert AFTER INSERT ON public.gateway_instances
    FOR EACH ROW EXECUTE FUNCTION app.dashboard_events_stage_gateway();
CREATE TRIGGER dashboard_events_update AFTER UPDATE OF status ON public.gateway_instances
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION app.dashboard_events_stage_gateway();

-- Commands: per statement, through the transition tables (a batch of claims
-- or acknowledgements stages all its rows in one statement).
CREATE FUNCTION app.dashboard_events_stage_commands() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- A new command joins a distribution through its target, which
        -- stages the distribution itself.
        INSERT INTO public.dashboard_events_staged (organization_id, kind, subject, data)
        SELECT n.organization_id, 'command.status', n.id::text,
               jsonb_build_object('command_id', n.id, 'gateway_id', n.gateway_id, 'type', n.type,
                                  'status', n.status, 'previous', NULL)
          FROM new_rows n;
    ELSE
        INSERT INTO public.dashboard_events_staged (organization_id, kind, subject, data, command_id)
        SELECT n.organization_id, 'command.status', n.id::text,
               jsonb_build_object('command_id', n.id, 'gateway_id', n.gateway_id, 'type', n.type,
                                  'status', n.status, 'previous', o.status), n.id
          FROM new_rows n JOIN old_rows o ON o.id = n.id
         WHERE o.status IS DISTINCT FROM n.status;
    END IF;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION app.dashboard_events_stage_commands() FROM PUBLIC;
CREATE TRIGGER dashboard_events_insert AFTER INSERT ON public.gateway_commands
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.dashboard_events_stage_commands();
CREATE TRIGGER dashboard_events_update AFTER UPDATE ON public.gateway_commands
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION app.dashboard_events_stage_commands();

-- A distribution's targets: one hint per distribution and statement.
CREATE FUNCTION app.dashboard_events_stage_targets() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO public.dashboard_events_staged (organization_id, subject, distribution_id)
        SELECT DISTINCT n.organization_id, n.distribution_id::text, n.distribution_id FROM new_rows n;
    ELSE
        INSERT INTO public.dashboard_events_staged (organization_id, subject, distribution_id)
        SELECT DISTINCT n.organization_id, n.distribution_id::text, n.distribution_id
          FROM new_rows n JOIN old_rows o ON o.distribution_id = n.distribution_id AND o.gateway_id = n.gateway_id
         WHERE o.command_id IS DISTINCT FROM n.command_id;
    END IF;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION app.dashboard_events_stage_targets() FROM PUBLIC;
CREATE TRIGGER dashboard_events_insert AFTER INSERT ON public.policy_distribution_targets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION app.dashboard_events_stage_targets();
CREATE TRIGGER dashboard_events_update AFTER UPDATE ON public.policy_distribution_targets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION app.dashboard_events_stage_targets();

-- A distribution created or moved to another stage: a hint.
CREATE FUNCTION app.dashboard_events_stage_distribution() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO public.dashboard_events_staged (organization_id, subject, distribution_id)
    VALUES (NEW.organization_id, NEW.id::text, NEW.id);
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION app.dashboard_events_stage_distribution() FROM PUBLIC;
CREATE TRIGGER dashboard_events_insert AFTER INSERT ON public.policy_distributions
    FOR EACH ROW EXECUTE FUNCTION app.dashboard_events_stage_distribution();
CREATE TRIGGER dashboard_events_update AFTER UPDATE OF stage ON public.policy_distributions
    FOR EACH ROW WHEN (OLD.stage IS DISTINCT FROM NEW.stage) EXECUTE FUNCTION app.dashboard_events_stage_distribution();

-- Publishes up to max_rows staged rows (see the header) and returns how
-- many it moved: a caller repeats while it returns max_rows. Cheap when
-- nothing is staged (no lock taken).
CREATE FUNCTION app.dashboard_events_publish(max_rows integer DEFAULT 10000) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    cutoff bigint;
    moved  integer;
    dists  uuid[];
    last   bigint;
BEGIN
    IF max_rows IS NULL OR max_rows < 1 OR max_rows > 100000 THEN
        RAISE EXCEPTION 'dashboard_events_publish: max_rows must be 1 … 100000, not %', max_rows
            USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.dashboard_events_staged) THEN
        RETURN 0;
    END IF;
    -- One publisher at a time: ids are handed out in this transaction only.
    PERFORM pg_advisory_xact_lock(7428024);
    SELECT max(s.seq) INTO cutoff
      FROM (SELECT st.seq FROM public.dashboard_events_staged st ORDER BY st.seq LIMIT max_rows) s;
    IF cutoff IS NULL THEN
        RETURN 0; -- another publisher took them
    END IF;
    -- Move them in staging order, and collect the distributions they touch
    -- (a command's through its target), in one statement: one snapshot.
    WITH gone AS (
        DELETE FROM public.dashboard_events_staged st WHERE st.seq <= cutoff RETURNING st.*
    ), ins AS (
        INSERT INTO public.dashboard_events (organization_id, kind, subject, data, created_at)
        SELECT g.organization_id, g.kind, g.subject, g.data, g.created_at FROM gone g
         WHERE g.kind IS NOT NULL ORDER BY g.seq
        RETURNING dashboard_events.id
    )
    SELECT (SELECT count(*) FROM gone),
           (SELECT array_agg(DISTINCT u.d) FROM (
                SELECT g.distribution_id AS d FROM gone g WHERE g.distribution_id IS NOT NULL
                UNION
                SELECT t.distribution_id FROM gone g JOIN public.policy_distribution_targets t ON t.command_id = g.command_id
                 WHERE g.command_id IS NOT NULL) u)
      INTO moved, dists;
    -- Each touched distribution's progress once (policy.Progress's counts:
    -- target.status in internal/cloud/policy), when it differs from its last
    -- row.
    IF dists IS NOT NULL THEN
        INSERT INTO public.dashboard_events (organization_id, kind, subject, data)
        SELECT c.organization_id, 'policy_distribution.progress', c.id::text, c.data
          FROM (SELECT pd.id, pd.organization_id,
                       jsonb_build_object('distribution_id', pd.id, 'policy_id', pd.policy_id, 'stage', pd.stage,
                           'total', count(t.gateway_id),
                           'waiting', count(*) FILTER (WHERE t.gateway_id IS NOT NULL AND t.command_id IS NULL),
                           'pending', count(*) FILTER (WHERE c.status = 'pending'),
                           'delivered', count(*) FILTER (WHERE c.status = 'delivered'),
                           'applied', count(*) FILTER (WHERE c.status = 'completed'),
                           'failed', count(*) FILTER (WHERE t.command_id IS NOT NULL
                                   AND (c.status IS NULL OR c.status NOT IN ('pending', 'delivered', 'completed')))) AS data
                  FROM public.policy_distributions pd
                  LEFT JOIN public.policy_distribution_targets t ON t.distribution_id = pd.id
                  LEFT JOIN public.gateway_commands c ON c.id = t.command_id
                 WHERE pd.id = ANY (dists)
                 GROUP BY pd.id) c
          LEFT JOIN LATERAL (SELECT e.data FROM public.dashboard_events e
                              WHERE e.subject = c.id::text AND e.kind = 'policy_distribution.progress'
                              ORDER BY e.id DESC LIMIT 1) l ON true
         WHERE l.data IS DISTINCT FROM c.data
         ORDER BY c.id;
    END IF;
    SELECT max(e.id) INTO last FROM public.dashboard_events e;
    IF last IS NOT NULL THEN
        PERFORM pg_notify('dashboard_events', last::text);
    END IF;
    RETURN moved;
END $$;
REVOKE ALL ON FUNCTION app.dashboard_events_publish(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.dashboard_events_publish(integer) TO staff_dashboard, staff_admin;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION app.dashboard_events_publish(integer);
DROP TRIGGER dashboard_events_insert ON public.gateway_instances;
DROP TRIGGER dashboard_events_update ON public.gateway_instances;
DROP TRIGGER dashboard_events_insert ON public.gateway_commands;
DROP TRIGGER dashboard_events_update ON public.gateway_commands;
DROP TRIGGER dashboard_events_insert ON public.policy_distributions;
DROP TRIGGER dashboard_events_update ON public.policy_distributions;
DROP TRIGGER dashboard_events_insert ON public.policy_distribution_targets;
DROP TRIGGER dashboard_events_update ON public.policy_distribution_targets;
DROP FUNCTION app.dashboard_events_stage_gateway();
DROP FUNCTION app.dashboard_events_stage_commands();
DROP FUNCTION app.dashboard_events_stage_targets();
DROP FUNCTION app.dashboard_events_stage_distribution();
DROP TABLE public.dashboard_events_staged;
-- +goose StatementEnd
-- +goose StatementBegin
-- 00033's function and 00024's deferred triggers, as they were.
CREATE OR REPLACE FUNCTION app.dashboard_events_record() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    prev    text;
    dist    uuid;
    d       record;
    data    jsonb;
    last    jsonb;
    last_id bigint;
    mine    boolean;
    partial text;
    seen    text;
    fresh   jsonb;
    id      bigint;
BEGIN
    -- Ids in commit order (see the migration's header): held to the end.
    PERFORM pg_advisory_xact_lock(7428024);
    IF TG_TABLE_NAME IN ('gateway_instances', 'gateway_commands') AND TG_OP = 'UPDATE' THEN
        prev := OLD.status;
    END IF;
    IF TG_TABLE_NAME = 'gateway_instances' THEN
        INSERT INTO public.dashboard_events (organization_id, kind, subject, data)
        VALUES (NEW.organization_id, 'gateway.status', NEW.id::text,
                jsonb_build_object('gateway_id', NEW.id, 'status', NEW.status, 'previous', prev))
        RETURNING dashboard_events.id INTO id;
        PERFORM pg_notify('dashboard_events', id::text);
        RETURN NULL;
    ELSIF TG_TABLE_NAME = 'gateway_commands' THEN
        INSERT INTO public.dashboard_events (organization_id, kind, subject, data)
        VALUES (NEW.organization_id, 'command.status', NEW.id::text,
                jsonb_build_object('command_id', NEW.id, 'gateway_id', NEW.gateway_id, 'type', NEW.type,
                                   'status', NEW.status, 'previous', prev))
        RETURNING dashboard_events.id INTO id;
        PERFORM pg_notify('dashboard_events', id::text);
        IF TG_OP = 'INSERT' THEN
            RETURN NULL; -- a new command joins a distribution through its target
        END IF;
        SELECT t.distribution_id INTO dist FROM public.policy_distribution_targets t
         WHERE t.command_id = NEW.id LIMIT 1;
    ELSIF TG_TABLE_NAME = 'policy_distributions' THEN
        dist := NEW.id;
    ELSIF TG_TABLE_NAME = 'policy_distribution_targets' THEN
        dist := NEW.distribution_id;
    ELSE
        RAISE EXCEPTION 'dashboard_events_record: no events for table %', TG_TABLE_NAME;
    END IF;
    IF dist IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT pd.organization_id, pd.policy_id, pd.stage INTO d FROM public.policy_distributions pd WHERE pd.id = dist;
    IF NOT FOUND THEN
        RETURN NULL; -- deleted before the commit
    END IF;
    -- The distribution's last progress row, and whether this transaction
    -- wrote it (an earlier trigger of this commit).
    SELECT e.id, e.data, age(e.xmin) = 0 INTO last_id, last, mine FROM public.dashboard_events e
     WHERE e.subject = dist::text AND e.kind = 'policy_distribution.progress' ORDER BY e.id DESC LIMIT 1;
    -- Distributions whose row this commit derived from the previous one
    -- rather than counted (see the migration's header).
    -- and those this commit has seen at all. (A client that sets either
    -- only makes its commit count more.)
    partial := coalesce(current_setting('app.dashboard_progress_partial', true), '');
    seen := coalesce(current_setting('app.dashboard_progress_seen', true), '');
    IF mine AND strpos(partial, dist::text) = 0 THEN
        RETURN NULL; -- counted at commit already
    END IF;
    IF strpos(seen, dist::text) = 0 THEN
        PERFORM set_config('app.dashboard_progress_seen', seen || dist::text || ',', true);
    END IF;
    IF NOT coalesce(mine, false) AND strpos(seen, dist::text) = 0 AND last IS NOT NULL AND TG_TABLE_NAME = 'gateway_commands' THEN
        -- One command moved: move one target from its old count to its new.
        prev := CASE WHEN OLD.status IN ('pending', 'delivered') THEN OLD.status
                     WHEN OLD.status = 'completed' THEN 'applied' ELSE 'failed' END;
        data := jsonb_set(last, ARRAY[prev], to_jsonb((last->>prev)::bigint - 1));
        prev := CASE WHEN NEW.status IN ('pending', 'delivered') THEN NEW.status
                     WHEN NEW.status = 'completed' THEN 'applied' ELSE 'failed' END;
        data := jsonb_set(data, ARRAY[prev], to_jsonb((data->>prev)::bigint + 1));
        data := jsonb_set(data, '{stage}', to_jsonb(d.stage));
        PERFORM set_config('app.dashboard_progress_partial', partial || dist::text || ',', true);
    ELSE
        -- policy.Progress's counts (target.status in internal/cloud/policy).
        SELECT jsonb_build_object('distribution_id', dist, 'policy_id', d.policy_id, 'stage', d.stage,
                   'total', count(*),
                   'waiting', count(*) FILTER (WHERE t.command_id IS NULL),
                   'pending', count(*) FILTER (WHERE c.status = 'pending'),
                   'delivered', count(*) FILTER (WHERE c.status = 'delivered'),
                   'applied', count(*) FILTER (WHERE c.status = 'completed'),
                   'failed', count(*) FILTER (WHERE t.command_id IS NOT NULL
                                             AND (c.status IS NULL OR c.status NOT IN ('pending', 'delivered', 'completed'))))
          INTO data
          FROM public.policy_distribution_targets t LEFT JOIN public.gateway_commands c ON c.id = t.command_id
         WHERE t.distribution_id = dist;
    END IF;
    IF mine THEN
        -- A derived row of this commit, and a second change: replace it by
        -- the count (or drop it when the count equals the row before it),
        -- so that the commit still appends one row with its state.
        PERFORM set_config('app.dashboard_progress_partial', replace(partial, dist::text || ',', ''), true);
        SELECT e.data INTO last FROM public.dashboard_events e
         WHERE e.subject = dist::text AND e.kind = 'policy_distribution.progress' AND e.id < last_id
         ORDER BY e.id DESC LIMIT 1;
        IF last IS NOT DISTINCT FROM data THEN
            DELETE FROM public.dashboard_events e WHERE e.id = last_id;
        ELSE
            fresh := data;
            UPDATE public.dashboard_events e SET data = fresh WHERE e.id = last_id;
        END IF;
        RETURN NULL;
    END IF;
    IF last IS NOT DISTINCT FROM data THEN
        RETURN NULL; -- no change
    END IF;
    INSERT INTO public.dashboard_events (organization_id, kind, subject, data)
    VALUES (d.organization_id, 'policy_distribution.progress', dist::text, data)
    RETURNING dashboard_events.id INTO id;
    PERFORM pg_notify('dashboard_events', id::text);
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION app.dashboard_events_record() FROM PUBLIC;
CREATE CONSTRAINT TRIGGER dashboard_events_insert AFTER INSERT ON public.gateway_instances
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION app.dashboard_events_record();
CREATE CONSTRAINT TRIGGER dashboard_events_update AFTER UPDATE OF status ON public.gateway_instances
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION app.dashboard_events_record();
CREATE CONSTRAINT TRIGGER dashboard_events_insert AFTER INSERT ON public.gateway_commands
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION app.dashboard_events_record();
CREATE CONSTRAINT TRIGGER dashboard_events_update AFTER UPDATE OF status ON public.gateway_commands
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION app.dashboard_events_record();
CREATE CONSTRAINT TRIGGER dashboard_events_insert AFTER INSERT ON public.policy_distributions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION app.dashboard_events_record();
CREATE CONSTRAINT TRIGGER dashboard_events_update AFTER UPDATE OF stage ON public.policy_distributions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.stage IS DISTINCT FROM NEW.stage)
    EXECUTE FUNCTION app.dashboard_events_record();
CREATE CONSTRAINT TRIGGER dashboard_events_insert AFTER INSERT ON public.policy_distribution_targets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION app.dashboard_events_record();
CREATE CONSTRAINT TRIGGER dashboard_events_update AFTER UPDATE OF command_id ON public.policy_distribution_targets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.command_id IS DISTINCT FROM NEW.command_id)
    EXECUTE FUNCTION app.dashboard_events_record();
-- +goose StatementEnd
