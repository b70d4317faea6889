-- name: GatewayByAPIKeyHash :one
-- The gateway an API key (its SHA-256) belongs to (SECURITY DEFINER: no
-- tenant yet), promoting a pending key on its first use.
SELECT k.gateway_id::uuid AS id, k.organization_id::bigint AS organization_id, k.status::text AS status
  FROM gateway_by_api_key_hash(@hash) AS k(gateway_id, organization_id, status);

-- name: Provision :one
-- Exchange a one-time provisioning token (its SHA-256) for a new gateway
-- with this API key. The function answers NULL when the token is not
-- valid, which this query returns as the nil UUID (never a gateway's id)
-- because sqlc takes a function's result for NOT NULL.
SELECT coalesce(gateway_provision(@organization_id, @serial, @token_hash, @key_hash, @key_prefix),
                '00000000-0000-0000-0000-000000000000'::uuid)::uuid AS id;
