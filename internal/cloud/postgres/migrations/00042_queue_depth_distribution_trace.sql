-- Issue 19: the command queue's depth for the Agent API's metrics, and a
-- policy distribution's trace.
--
-- 1. The command queue's depth.
--
-- gateway_commands_depth() counts the commands still in the queue — pending
-- (waiting for a claim or a redelivery) and delivered (sent, not yet
-- completed or failed) — by status and type over every organisation, with
-- the oldest one's creation time per group. A backlog that grows, or a
-- pending command that keeps ageing, means gateways are offline or the
-- control plane is not delivering. Platform figures only: no organisation,
-- gateway or payload leaves the function. The terminal statuses are left
-- out (history, not a queue; counting them would read every row); each live
-- status has a partial index (gateway_commands_expiry for pending,
-- gateway_commands_deadline for delivered) that its branch reads, so the
-- cost follows the queue, not the history (BenchmarkDepthSample).
--
-- Owned by the owner (a definer function sees every organisation's rows)
-- and executable only by the ingest role, the Agent API's, which samples it.
--
-- 2. A distribution keeps the traceparent of the request that started it
-- (policy.Distributor.Distribute), NULL when untraced: the Agent API's
-- advancer, which enqueues the later stages' commands (the rest after the
-- canaries, the restarts), continues it, so every command of a release
-- joins the release's trace. An id, never personal data; bounded like the
-- header (gateway_commands.trace_parent, 00040).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION gateway_commands_depth()
RETURNS TABLE (status text, type text, commands bigint, oldest timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    -- One branch per status, each matching a partial index's predicate
    -- exactly (status IN (...) would match neither and read the history).
    SELECT 'delivered'::text, c.type, count(*), min(c.created_at)
    FROM public.gateway_commands c WHERE c.status = 'delivered' GROUP BY c.type
    UNION ALL
    SELECT 'pending'::text, c.type, count(*), min(c.created_at)
    FROM public.gateway_commands c WHERE c.status = 'pending' GROUP BY c.type
    ORDER BY 1, 2
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION gateway_commands_depth() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gateway_commands_depth() TO staff_ingest;

ALTER TABLE policy_distributions ADD COLUMN trace_parent text NULL
    CONSTRAINT policy_distributions_trace_parent_length CHECK (length(trace_parent) <= 128);

-- +goose Down
ALTER TABLE policy_distributions DROP COLUMN trace_parent;
DROP FUNCTION gateway_commands_depth();
