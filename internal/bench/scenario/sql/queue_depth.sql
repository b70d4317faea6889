-- The command queue's depth: commands enqueued and not yet finished by
-- their gateway (pending, or delivered and awaiting the final ack), in
-- every organisation. Run as the administrator (a superuser; RLS aside).
SELECT count(*) FROM gateway_commands WHERE status IN ('pending', 'delivered');
