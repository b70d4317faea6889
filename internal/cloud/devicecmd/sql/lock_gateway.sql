-- name: LockGateway :exec
-- Serialise the device lists of one gateway until the transaction ends: a
-- list numbered later is computed after the earlier one committed.
SELECT pg_advisory_xact_lock(hashtextextended('devices_update:' || @gateway_key::text, 0));
