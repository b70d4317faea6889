-- name: RotateSecret :one
-- Replace an organisation's enrolment secret hash.
UPDATE organizations SET enrolment_secret_hash = @hash, enrolment_secret_rotated_at = now(), updated_at = now()
WHERE id = @organization_id
RETURNING enrolment_secret_rotated_at;
