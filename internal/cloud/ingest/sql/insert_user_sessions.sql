INSERT INTO monitoring.user_sessions
    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
SELECT t.id, $1, $2, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.session_type, t.datetime
FROM unnest($3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])
    AS t(id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
ON CONFLICT DO NOTHING
