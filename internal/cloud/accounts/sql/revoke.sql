-- Gateway revocation (RevokeGateway).

-- name: RevokeGateway :one
-- Revoke a gateway that is not revoked yet: its key stops working at once
-- (every key lookup requires revoked_at IS NULL), a pending rotation's key
-- is voided, and gateway_instances_revoked_notify closes its control socket.
UPDATE gateway_instances
   SET revoked_at = now(), status = 'revoked', updated_at = now(),
       pending_key_hash = NULL, pending_key_prefix = NULL, pending_key_expires_at = NULL, pending_command_id = NULL
 WHERE id = $1 AND revoked_at IS NULL
RETURNING organization_id, serial;

-- name: GatewayRevokedAt :one
-- Whether a gateway the actor may see exists, and when it was revoked.
SELECT revoked_at FROM gateway_instances WHERE id = $1;

-- name: CancelGatewayCommands :execrows
-- A revoked gateway cannot fetch its commands: cancel what it has not
-- finished.
UPDATE gateway_commands
   SET status = 'cancelled', completed_at = now(), error = 'gateway revoked', ack_deadline = NULL
 WHERE gateway_id = $1 AND status IN ('pending', 'delivered');
