-- Set-based policy distribution (issue 17, part 3): a distribution's
-- progress is counted once per commit, not once per changed row.
--
-- app.dashboard_events_record (00024) runs, at commit, once per changed row
-- of policy_distribution_targets, gateway_commands and policy_distributions,
-- and for every row that belongs to a distribution it counted all of the
-- distribution's targets: a stage of n targets written in one transaction
-- (policy.Distribute, policy.Distributor.Advance) cost n counts over n rows,
-- O(n²), under the events' advisory lock, about 1 s at 1,000 targets and
-- minutes' worth of row visits at 10,000. All of a commit's deferred
-- triggers see the database as the transaction leaves it, so the first one
-- records the state at commit and the others can only find it unchanged: a
-- trigger now reads the distribution's last progress row first and returns
-- when this transaction wrote it (age(xmin) = 0), before counting. The
-- events appended are exactly those appended before. (Nothing in the code
-- base runs SET CONSTRAINTS … IMMEDIATE, which would fire them earlier.)

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION app.dashboard_events_record() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    prev  text;
    dist  uuid;
    d     record;
    data  jsonb;
    last  jsonb;
    mine  boolean;
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
    -- The distribution's last progress row. When this transaction wrote it,
    -- an earlier trigger of the same commit has recorded the state at
    -- commit already (deferred triggers all see the database as the
    -- transaction leaves it): skip counting the targets again.
    SELECT e.data, age(e.xmin) = 0 INTO last, mine FROM public.dashboard_events e
     WHERE e.subject = dist::text AND e.kind = 'policy_distribution.progress' ORDER BY e.id DESC LIMIT 1;
    IF mine THEN
        RETURN NULL;
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
    IF last IS NOT DISTINCT FROM data THEN
        RETURN NULL; -- no change (or already recorded by this transaction)
    END IF;
    INSERT INTO public.dashboard_events (organization_id, kind, subject, data)
    VALUES (d.organization_id, 'policy_distribution.progress', dist::text, data)
    RETURNING dashboard_events.id INTO id;
    PERFORM pg_notify('dashboard_events', id::text);
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION app.dashboard_events_record() RETURNS trigger
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
-- +goose StatementEnd
