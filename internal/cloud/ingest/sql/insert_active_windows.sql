-- $1 organisation, $2 gateway, then one array per column.
INSERT INTO monitoring.active_windows
    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
SELECT t.id, $1, $2, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.window_title, t.process_name, t.url, t.datetime, t.duration_seconds
FROM unnest($3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::integer[])
    AS t(id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, url, datetime, duration_seconds)
ON CONFLICT DO NOTHING
