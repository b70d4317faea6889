-- name: CancelPending :execrows
-- Cancel a gateway's pending (not yet delivered) commands of one type.
UPDATE gateway_commands SET status = 'cancelled', completed_at = now(), error = @reason
 WHERE gateway_id = @gateway_id AND type = @type AND status = 'pending';
