-- name: CredentialPut :exec
INSERT INTO agent_credentials (agent_uid, credential_hash, computer_name, enrolled_at, reported_at)
VALUES (?, ?, ?, ?, NULL)
ON CONFLICT (agent_uid) DO UPDATE SET credential_hash = excluded.credential_hash,
    computer_name = excluded.computer_name, enrolled_at = excluded.enrolled_at, reported_at = NULL;

-- name: CredentialExists :one
SELECT count(*) FROM agent_credentials WHERE agent_uid = ?;

-- name: CredentialLookup :one
SELECT agent_uid FROM agent_credentials WHERE credential_hash = ?;

-- name: CredentialDelete :execrows
DELETE FROM agent_credentials WHERE agent_uid = ?;

-- name: CredentialCount :one
SELECT count(*) FROM agent_credentials;

-- name: CredentialUnreported :many
SELECT agent_uid, computer_name, enrolled_at FROM agent_credentials WHERE reported_at IS NULL ORDER BY enrolled_at LIMIT ?;

-- name: CredentialReported :exec
UPDATE agent_credentials SET reported_at = ? WHERE agent_uid = ? AND enrolled_at = ?;
