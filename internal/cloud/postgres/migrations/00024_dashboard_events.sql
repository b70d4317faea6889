-- Live updates for the Dashboard API (issue 14, server-sent events; the
-- package internal/cloud/liveevents serves them, docs/protocol.md
-- "Dashboard live events (SSE)" documents the kinds).
--
-- dashboard_events is an append-only log of changes the dashboard shows
-- live: a gateway's status (gateway.status), a command's status
-- (command.status) and a policy distribution's progress
-- (policy_distribution.progress, the counts of policy.Progress). Triggers
-- on the sources append a row when the status actually changes and NOTIFY
-- dashboard_events with its id, so every API instance hears of changes any
-- process makes; each client then reads the rows after its last id under
-- its own tenant context, so row-level security alone decides what it sees.
-- Only ORG_ADMIN, HR and ADMIN see these rows (department leads and
-- employees see no gateways, commands or policies at all).
--
-- Ids in commit order. A client reads "id > last", so an id must never
-- become visible after a higher one (a client past it would lose it). A
-- plain identity column does not promise that: ids are taken when a row is
-- inserted, transactions commit in any order. So the triggers are
-- constraint triggers, DEFERRABLE INITIALLY DEFERRED: they run at commit,
-- and the first takes a transaction-level advisory lock (7428024) held until
-- the commit has ended and is visible. Ids are therefore handed out in the
-- order the transactions that own them commit; the lock serialises only the
-- commit tail of transactions that change a status (a few inserts), never
-- their work. A deferred trigger sees the row as the statement left it
-- (NEW), and the database as the transaction leaves it, so a distribution's
-- progress counts are its state at commit; progress rows equal to the
-- distribution's previous one are not appended.
--
-- Pruning: app.dashboard_events_prune() deletes rows older than 24 hours,
-- oldest first, at most 10,000 per call; the Dashboard API's live-events hub
-- calls it periodically (liveevents.Config.PruneInterval). A client resuming
-- from an id older than app.dashboard_events_bounds()'s first_id (the first
-- id still kept) may have missed pruned rows and is told to reload.

-- +goose Up
-- +goose StatementBegin
CREATE TABLE public.dashboard_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('gateway.status', 'command.status', 'policy_distribution.progress')),
    subject         text NOT NULL CHECK (length(subject) <= 64),
    data            jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dashboard_events_subject ON public.dashboard_events (subject, id);
CREATE INDEX dashboard_events_created_at ON public.dashboard_events (created_at);
-- The command trigger finds a command's distribution by it.
CREATE INDEX policy_distribution_targets_command_id ON public.policy_distribution_targets (command_id)
    WHERE command_id IS NOT NULL;

ALTER TABLE public.dashboard_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.dashboard_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_events ON public.dashboard_events USING (
    (organization_id = (SELECT app.org_id()) AND (SELECT app.app_role()) IN ('ORG_ADMIN', 'HR', 'ADMIN'))
    OR (SELECT app.all_organizations())
);
GRANT SELECT ON public.dashboard_events TO staff_dashboard, staff_admin;

-- The one trigger function of every source table (TG_TABLE_NAME says which).
CREATE FUNCTION app.dashboard_events_record() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    prev  text;
    dist  uuid;
    d     record;
    data  jsonb;
    last  jsonb;
    id    bigint;
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
    SELECT e.data INTO last FROM public.dashboard_events e
     WHERE e.subject = dist::text AND e.kind = 'policy_distribution.progress' ORDER BY e.id DESC LIMIT 1;
    IF last IS NOT DISTINCT FROM data THEN
        RETURN NULL; -- no change (or already recorded by this transaction)
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

-- Deletes events older than 24 hours, oldest first, at most 10,000 per
-- call; returns how many. Called periodically by the Dashboard API.
CREATE FUNCTION app.dashboard_events_prune() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    n integer;
BEGIN
    DELETE FROM public.dashboard_events e
     WHERE e.id IN (SELECT o.id FROM public.dashboard_events o
                     WHERE o.created_at < now() - interval '24 hours'
                     ORDER BY o.id LIMIT 10000 FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION app.dashboard_events_prune() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.dashboard_events_prune() TO staff_dashboard, staff_admin;

-- The ids the log holds, every organisation's (no tenant data, two
-- numbers): first_id, the first still kept (a client resuming from below
-- first_id - 1 may have missed pruned events), and last_id, the last
-- committed (a client starting "from now" starts there; ids are in commit
-- order, so nothing visible later is below it). With no rows, first_id is
-- the next id the log will hand out and last_id the one before.
CREATE FUNCTION app.dashboard_events_bounds(OUT first_id bigint, OUT last_id bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    SELECT min(e.id), max(e.id) INTO first_id, last_id FROM public.dashboard_events e;
    IF first_id IS NULL THEN
        SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END INTO first_id
          FROM public.dashboard_events_id_seq s;
        last_id := first_id - 1;
    END IF;
END $$;
REVOKE ALL ON FUNCTION app.dashboard_events_bounds() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.dashboard_events_bounds() TO staff_dashboard, staff_admin;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION app.dashboard_events_bounds();
DROP FUNCTION app.dashboard_events_prune();
DROP TRIGGER dashboard_events_insert ON public.gateway_instances;
DROP TRIGGER dashboard_events_update ON public.gateway_instances;
DROP TRIGGER dashboard_events_insert ON public.gateway_commands;
DROP TRIGGER dashboard_events_update ON public.gateway_commands;
DROP TRIGGER dashboard_events_insert ON public.policy_distributions;
DROP TRIGGER dashboard_events_update ON public.policy_distributions;
DROP TRIGGER dashboard_events_insert ON public.policy_distribution_targets;
DROP TRIGGER dashboard_events_update ON public.policy_distribution_targets;
DROP FUNCTION app.dashboard_events_record();
DROP INDEX public.policy_distribution_targets_command_id;
DROP TABLE public.dashboard_events;
-- +goose StatementEnd
