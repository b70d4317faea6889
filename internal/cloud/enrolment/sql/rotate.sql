-- Replace an organisation's enrolment secret hash ($1 organisation, $2 hash).
UPDATE organizations SET enrolment_secret_hash = $2, enrolment_secret_rotated_at = now(), updated_at = now()
WHERE id = $1
RETURNING enrolment_secret_rotated_at;
