SELECT monitoring.insert_device_events('monitoring', $1::bigint, $2::uuid, $3::uuid[], $4::bigint[], $5::bigint[], $6::text[],
    $7::timestamptz[], $8::text[], $9::text[], $10::integer[], $11::integer[], $12::integer[], $13::text[], $14::text[])
