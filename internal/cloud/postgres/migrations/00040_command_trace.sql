-- A command carries its enqueuer's trace (issue 19): the W3C traceparent of
-- the span that enqueued it (the Dashboard API's request, staffctl, the
-- policy distribution), NULL when untraced. The control hub sends it with
-- the command, so the gateway's execution and the recorded outcome join the
-- enqueuer's trace. An id, never personal data; bounded like the header.

-- +goose Up
ALTER TABLE gateway_commands ADD COLUMN trace_parent text NULL
    CONSTRAINT gateway_commands_trace_parent_length CHECK (length(trace_parent) <= 128);

-- +goose Down
ALTER TABLE gateway_commands DROP COLUMN trace_parent;
