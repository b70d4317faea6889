SELECT id FROM devices WHERE id = ANY($1::bigint[])
