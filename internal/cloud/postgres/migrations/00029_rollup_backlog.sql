-- The reports' rollup backlog, for the maintainer's metrics (issue 15).
--
-- monitoring.activity_backlog(p_before) counts the dirty hours before
-- p_before waiting for the rollup maintainer (00026) and the oldest of
-- them, over every organisation: a backlog that grows, or an oldest hour
-- that keeps ageing, means the maintainer is down or slower than the
-- ingest, and the reports read more and more days raw (correct, but slow).
-- Platform figures only (no organisation, no sid), for the ingest role the
-- maintainer runs as, which has no privilege on the table itself.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION monitoring.activity_backlog(p_before timestamptz)
RETURNS TABLE (hours bigint, sids bigint, oldest timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT count(*), count(DISTINCT (d.organization_id, d.user_sid)), min(d.hour)
    FROM monitoring.activity_dirty d
    WHERE d.hour < p_before
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION monitoring.activity_backlog(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.activity_backlog(timestamptz) TO staff_ingest;

-- +goose Down
DROP FUNCTION monitoring.activity_backlog(timestamptz);
