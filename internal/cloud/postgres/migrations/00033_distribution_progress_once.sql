-- Set-based policy distribution (issue 17, part 3): a distribution's
-- progress event costs O(1) per acknowledgement and O(n) per stage, not
-- O(n) and O(n²).
--
-- app.dashboard_events_record (00024) runs at commit, under the events'
-- advisory lock, once per changed row of policy_distribution_targets,
-- gateway_commands and policy_distributions, and for every row of a
-- distribution it counted all the distribution's targets (about 1.4 ms at
-- 1,000 targets, 9 ms at 10,000 on the 2-core machine, loaded). So a stage
-- of n targets written in one transaction (policy.Distribute,
-- policy.Distributor.Advance) cost n counts, and every command status
-- change of a release (claim, completed acknowledgement: 2n transactions)
-- one count, all serialised by the lock: O(n²) per release. Now:
--
--  - All of a commit's deferred triggers see the database as the
--    transaction leaves it, so once one of them has counted a distribution
--    (and appended a row, or found none needed) the others can only find
--    the same state: a trigger reads the distribution's last progress row
--    first and returns when this transaction wrote it by counting
--    (age(xmin) = 0 and not listed as derived).
--  - A commit whose only change to a distribution is one command's status
--    (an acknowledgement, a claim, a sweep of one command) derives the row
--    from the distribution's last one instead of counting: one target moves
--    from the old status's count to the new one's. Events are appended in
--    commit order under the lock, every change of a target's status appends
--    one (or finds the counts unchanged), so the last row is the state
--    before this commit. It is exact as long as the counts only change
--    through these triggers: targets deleted (a gateway or distribution
--    deleted) append nothing, as before, and the next count (any target or
--    stage change) corrects it; a pruned last row means counting again.
--  - When a second change of the same distribution follows a derived row in
--    the same commit, the row is replaced by a count (or dropped when the
--    count equals the row before it), so a commit still appends at most one
--    progress row per distribution, with its state at commit. Transaction-
--    local settings app.dashboard_progress_seen and _partial list the
--    distributions a commit has seen and those whose row it derived; a
--    client setting them can only make its own commit count more.
--
-- The events appended are those appended before. (Nothing in the code base
-- runs SET CONSTRAINTS … IMMEDIATE, which would fire the triggers earlier.)

-- +goose Up
-- +goose StatementBegin
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
