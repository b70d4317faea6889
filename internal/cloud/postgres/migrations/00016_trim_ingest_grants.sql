-- The Agent API's role keeps only what its code uses (issue 11, deliverable 2).
--
-- 00001 granted staff_ingest read access to tables the Agent API never reads
-- or writes itself: provisioning tokens are checked and spent only inside
-- the SECURITY DEFINER gateway_provision (it runs as the owner), employee
-- identities and the device-adapter registry are dashboard data, and device
-- command results have no ingest path yet (the door-terminal work will add
-- a definer function or a narrow grant when it needs one). A leaked ingest
-- URL should not read another organisation's tokens' bookkeeping or any
-- organisation's identities, so these grants go.

-- +goose Up
REVOKE SELECT, UPDATE ON provisioning_tokens FROM staff_ingest;
REVOKE SELECT ON employee_identities FROM staff_ingest;
REVOKE SELECT, UPDATE ON device_commands FROM staff_ingest;
REVOKE SELECT ON device_adapters FROM staff_ingest;

-- +goose Down
GRANT SELECT, UPDATE ON provisioning_tokens TO staff_ingest;
GRANT SELECT ON employee_identities TO staff_ingest;
GRANT SELECT, UPDATE ON device_commands TO staff_ingest;
GRANT SELECT ON device_adapters TO staff_ingest;
