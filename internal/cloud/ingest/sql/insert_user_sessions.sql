SELECT monitoring.insert_user_sessions('monitoring', $1::bigint, $2::uuid, $3::uuid[], $4::bigint[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::timestamptz[])
