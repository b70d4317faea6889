-- The enrolment secret hash of the transaction's organisation ($1).
SELECT enrolment_secret_hash, enrolment_secret_rotated_at FROM organizations WHERE id = $1;
