INSERT INTO monitoring.visited_sites
    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
SELECT t.id, $1, $2, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.url, t.title, t.datetime, t.duration_seconds
FROM unnest($3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::integer[])
    AS t(id, seq, agent_uid, computer_uid, user_sid, url, title, datetime, duration_seconds)
ON CONFLICT DO NOTHING
