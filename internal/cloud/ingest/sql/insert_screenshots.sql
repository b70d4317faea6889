INSERT INTO monitoring.screenshots
    (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
SELECT t.id, $1, $2, t.seq, t.agent_uid, t.computer_uid, t.user_sid, t.file_path, t.file_size, t.sha256, t.datetime
FROM unnest($3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::timestamptz[])
    AS t(id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
ON CONFLICT DO NOTHING
