-- name: Due :many
-- Which of these gateways have commands due now (gateway_commands_due).
SELECT gateway_commands_due(@gateway_ids::uuid[]);
