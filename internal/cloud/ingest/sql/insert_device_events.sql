INSERT INTO monitoring.device_events
    (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door,
     major_code, minor_code, verify_mode, direction)
SELECT t.id, $1, $2, t.seq, t.device_id, t.device_serial, t.datetime, t.employee_number, t.card_number, t.door,
       t.major_code, t.minor_code, t.verify_mode, t.direction
FROM unnest($3::uuid[], $4::bigint[], $5::bigint[], $6::text[], $7::timestamptz[], $8::text[], $9::text[], $10::integer[],
            $11::integer[], $12::integer[], $13::text[], $14::text[])
    AS t(id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code, verify_mode, direction)
ON CONFLICT DO NOTHING
