-- Ingest hardening (issue 10, "one bad input never stops the pipeline"):
--
-- * monitoring.ensure_day_partitions creates only the daily partitions a
--   batch needs (the days it names, the tables it writes, the schema it
--   writes to), and never a day its table's retention has already expired,
--   where monitoring.ensure_partitions created every day of a range in every
--   table of both schemas.
-- * monitoring.stored_event_seqs tells the ingest role the sequence numbers
--   stored for events its batch found already stored (duplicates), in the
--   transaction's organisation only, so that a re-sent event under a new
--   sequence number is accounted (gateway_resent_seqs) instead of leaving a
--   permanent false gap.
-- * monitoring.screenshot_files_referenced tells the orphan-file sweep which
--   of a day's screenshot files a stored row still references.
--
-- All three are SECURITY DEFINER with a pinned search_path and executable by
-- staff_ingest only, like the partition functions of 00002.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION monitoring.ensure_day_partitions(p_schema text, p_tables text[], p_days date[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    t text;
    d date;
    keep integer;
    created integer := 0;
    pname text;
BEGIN
    IF p_schema NOT IN ('monitoring', 'monitoring_fallback') THEN
        RAISE EXCEPTION 'ensure_day_partitions: unknown schema %', p_schema USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(p_days) > 62 THEN
        RAISE EXCEPTION 'ensure_day_partitions: % days at once, at most 62', cardinality(p_days)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF p_schema = 'monitoring' AND monitoring.storage_kind() <> 'partitions' THEN
        RETURN 0; -- TimescaleDB creates its chunks itself
    END IF;
    FOREACH t IN ARRAY p_tables LOOP
        SELECT days INTO keep FROM monitoring.retention WHERE table_name = t;
        IF keep IS NULL THEN
            RAISE EXCEPTION 'ensure_day_partitions: unknown table %', t USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOREACH d IN ARRAY p_days LOOP
            -- A day wholly past retention would be dropped at the next
            -- maintenance run: never create it (ingest refuses such events).
            CONTINUE WHEN ((d + 1)::timestamp AT TIME ZONE 'UTC') <= now() - make_interval(days => keep);
            CONTINUE WHEN d > (now() AT TIME ZONE 'UTC')::date + 2;
            pname := t || '_p' || to_char(d, 'YYYYMMDD');
            IF to_regclass(format('%I.%I', p_schema, pname)) IS NULL THEN
                PERFORM pg_advisory_xact_lock(hashtext(p_schema || '.' || pname));
                IF to_regclass(format('%I.%I', p_schema, pname)) IS NULL THEN
                    EXECUTE format(
                        'CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                        p_schema, pname, p_schema, t, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
                    EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', p_schema, pname);
                    created := created + 1;
                END IF;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;
REVOKE ALL ON FUNCTION monitoring.ensure_day_partitions(text, text[], date[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.ensure_day_partitions(text, text[], date[]) TO staff_ingest;

-- The sequence numbers stored for the given events (id, datetime pairs) of
-- one table of one schema, in the transaction's organisation
-- (app.current_organization_id) only; nothing without one.
CREATE FUNCTION monitoring.stored_event_seqs(p_schema text, p_table text, p_ids uuid[], p_times timestamptz[])
RETURNS TABLE (id uuid, datetime timestamptz, seq bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    org bigint := NULLIF(current_setting('app.current_organization_id', true), '')::bigint;
BEGIN
    IF p_schema NOT IN ('monitoring', 'monitoring_fallback')
       OR p_table NOT IN (SELECT table_name FROM monitoring.retention) THEN
        RAISE EXCEPTION 'stored_event_seqs: unknown table %.%', p_schema, p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF org IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT s.id, s.datetime, s.seq FROM %I.%I s JOIN unnest($1, $2) AS k(id, datetime)
           ON s.id = k.id AND s.datetime = k.datetime WHERE s.organization_id = $3', p_schema, p_table)
        USING p_ids, p_times, org;
END $$;
REVOKE ALL ON FUNCTION monitoring.stored_event_seqs(text, text, uuid[], timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.stored_event_seqs(text, text, uuid[], timestamptz[]) TO staff_ingest;

-- Which of p_paths (files of organisation p_org's screenshots of UTC day
-- p_day) a row of monitoring.screenshots or monitoring_fallback.screenshots
-- references. The sweep crosses organisations, hence SECURITY DEFINER; it
-- learns nothing but whether the paths it already holds are in use.
CREATE FUNCTION monitoring.screenshot_files_referenced(p_org bigint, p_day date, p_paths text[]) RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT s.file_path FROM monitoring.screenshots s
     WHERE s.organization_id = p_org
       AND s.datetime >= (p_day::timestamp AT TIME ZONE 'UTC') AND s.datetime < ((p_day + 1)::timestamp AT TIME ZONE 'UTC')
       AND s.file_path = ANY (p_paths)
    UNION
    SELECT f.file_path FROM monitoring_fallback.screenshots f
     WHERE f.organization_id = p_org
       AND f.datetime >= (p_day::timestamp AT TIME ZONE 'UTC') AND f.datetime < ((p_day + 1)::timestamp AT TIME ZONE 'UTC')
       AND f.file_path = ANY (p_paths)
$$;
REVOKE ALL ON FUNCTION monitoring.screenshot_files_referenced(bigint, date, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION monitoring.screenshot_files_referenced(bigint, date, text[]) TO staff_ingest;

-- Sequence numbers of events the gateway re-sent under a new sequence number
-- after their first copy was stored: each is accounted once (the primary key
-- makes a retried batch count nothing twice).
CREATE TABLE gateway_resent_seqs (
    organization_id bigint NOT NULL,
    gateway_id      uuid NOT NULL,
    seq             bigint NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, seq),
    FOREIGN KEY (organization_id, gateway_id) REFERENCES gateway_instances(organization_id, id) ON DELETE CASCADE
);
ALTER TABLE gateway_resent_seqs ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_resent_seqs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON gateway_resent_seqs
    USING (
        organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
        OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    );
GRANT SELECT, INSERT ON gateway_resent_seqs TO staff_ingest;

-- With a separate time-series store (TIMESCALE_URL) a batch's events commit
-- there before its accounting commits in the main database. If the second
-- commit fails (or the Agent API is killed in between), the retry under the
-- same Idempotency-Key finds every event a duplicate under its own seq and
-- would account nothing: a permanent false gap. So the store's transaction
-- also records what it accounted for the key, here, in the store's
-- database; a retry adds to it and reads the total back. The row is deleted
-- once the main database has committed (stale rows are harmless: a key
-- that completed is only ever replayed) and purged after two days.
CREATE TABLE ingest_store_accounting (
    organization_id bigint NOT NULL,
    gateway_id      uuid NOT NULL,
    idempotency_key uuid NOT NULL,
    accepted        bigint NOT NULL CHECK (accepted >= 0),
    resent          bigint[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, idempotency_key)
);
ALTER TABLE ingest_store_accounting ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingest_store_accounting FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ingest_store_accounting
    USING (
        organization_id = NULLIF(current_setting('app.current_organization_id', true), '')::bigint
        OR NULLIF(current_setting('app.current_role', true), '') = 'ADMIN'
    );
GRANT SELECT, INSERT, UPDATE, DELETE ON ingest_store_accounting TO staff_ingest;

-- events_accepted now counts every sequence number accounted as received:
-- events newly stored plus re-sent copies (events_resent, of which). The gap
-- stays max_seq - events_accepted - events_dropped.
ALTER TABLE gateway_ingest_stats ADD COLUMN events_resent bigint NOT NULL DEFAULT 0;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
ALTER TABLE gateway_ingest_stats DROP COLUMN events_resent;
DROP TABLE ingest_store_accounting;
DROP TABLE gateway_resent_seqs;
DROP FUNCTION monitoring.screenshot_files_referenced(bigint, date, text[]);
DROP FUNCTION monitoring.stored_event_seqs(text, text, uuid[], timestamptz[]);
DROP FUNCTION monitoring.ensure_day_partitions(text, text[], date[]);
-- +goose StatementEnd
