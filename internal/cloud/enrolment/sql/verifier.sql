-- name: Verifier :one
-- The enrolment secret hash of the transaction's organisation.
SELECT enrolment_secret_hash, enrolment_secret_rotated_at FROM organizations WHERE id = @organization_id;
