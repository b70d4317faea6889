-- name: LoginLookup :many
-- The account an e-mail names (none for an unknown one), with its password
-- hash and how long a lock still holds (SECURITY DEFINER: no tenant yet).
SELECT k.user_id::bigint AS user_id, coalesce(k.organization_id, 0)::bigint AS organization_id, k.role::text AS role,
       coalesce(k.department_id, 0)::bigint AS department_id, coalesce(k.employee_id, 0)::bigint AS employee_id,
       k.email::text AS email, k.password_hash::text AS password_hash, k.is_active::boolean AS is_active,
       k.retry_after_ms::bigint AS retry_after_ms
  FROM app.login_lookup(@email) AS k(user_id, organization_id, role, department_id, employee_id, email,
                                     password_hash, is_active, retry_after_ms);

-- name: LoginResult :one
-- Records a password check's outcome: failure counting and the lock, or the
-- new session and its first refresh token; audited.
SELECT r.outcome::text AS outcome, r.retry_after_ms::bigint AS retry_after_ms,
       coalesce(r.session_id, '00000000-0000-0000-0000-000000000000'::uuid)::uuid AS session_id,
       coalesce(r.refresh_expires_at, 'epoch'::timestamptz)::timestamptz AS refresh_expires_at
  FROM app.login_result(@email, sqlc.narg(user_id)::bigint, @outcome, @action, @new_hash, @refresh_hash, @refresh_idle::interval,
                        @refresh_max::interval, @max_failures, @lock_base::interval, @lock_max::interval,
                        sqlc.narg(client)::inet, @user_agent)
       AS r(outcome, retry_after_ms, session_id, refresh_expires_at);

-- name: SessionRefresh :one
-- Rotates a refresh token, or detects its reuse (the family is revoked).
SELECT r.outcome::text AS outcome,
       coalesce(r.session_id, '00000000-0000-0000-0000-000000000000'::uuid)::uuid AS session_id,
       coalesce(r.user_id, 0)::bigint AS user_id, coalesce(r.organization_id, 0)::bigint AS organization_id,
       coalesce(r.role, '')::text AS role, coalesce(r.department_id, 0)::bigint AS department_id,
       coalesce(r.employee_id, 0)::bigint AS employee_id, coalesce(r.email, '')::text AS email,
       coalesce(r.refresh_expires_at, 'epoch'::timestamptz)::timestamptz AS refresh_expires_at
  FROM app.session_refresh(@old_hash, @new_hash, @refresh_idle::interval, sqlc.narg(client)::inet)
       AS r(outcome, session_id, user_id, organization_id, role, department_id, employee_id, email, refresh_expires_at);

-- name: SessionLogout :one
-- Revokes the family of a refresh token; false when unknown or already
-- revoked.
SELECT app.session_logout(@hash, sqlc.narg(client)::inet)::boolean AS revoked;

-- name: SessionsRevokeUser :one
-- Revokes every family of a user on behalf of one of its active sessions;
-- -1 when that session is not active.
SELECT app.sessions_revoke_user(@user_id, @session_id, sqlc.narg(client)::inet)::integer AS revoked;

-- name: SessionEmail :one
-- The e-mail of an active session's active user (empty when none).
SELECT coalesce(app.session_email(@user_id, @session_id), '')::text AS email;

-- name: PasswordChange :one
-- Stores a new password hash, revokes every family of the user and opens a
-- new one for the caller.
SELECT r.outcome::text AS outcome,
       coalesce(r.session_id, '00000000-0000-0000-0000-000000000000'::uuid)::uuid AS session_id,
       coalesce(r.refresh_expires_at, 'epoch'::timestamptz)::timestamptz AS refresh_expires_at
  FROM app.password_change(@user_id, @session_id, @new_hash, @refresh_hash, @refresh_idle::interval,
                           @refresh_max::interval, sqlc.narg(client)::inet, @user_agent)
       AS r(outcome, session_id, refresh_expires_at);

-- name: SessionActive :one
-- Whether an access token's family still holds (one indexed lookup).
SELECT app.session_active(@session_id)::boolean AS active;
