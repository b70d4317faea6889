-- name: InsertResentSeqs :execrows
-- Sequence numbers of duplicates the gateway re-sent under a new number:
-- each is recorded (and so accounted) once; RETURNING counts the new ones.
INSERT INTO gateway_resent_seqs (organization_id, gateway_id, seq)
SELECT @organization_id::bigint, @gateway_id::uuid, s FROM unnest(@seqs::bigint[]) AS s
ON CONFLICT DO NOTHING
RETURNING seq;
