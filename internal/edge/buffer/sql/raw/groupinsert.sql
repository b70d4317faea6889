-- The group commit's multi-row insert of agent events (see groupinsert.go),
-- hand-written: its VALUES list is repeated for a fixed number of rows, which
-- sqlc cannot express. Open prepares one copy per row count in
-- groupInsertSizes, with {rows} replaced by that many copies of the row's
-- parameter list (one ? per column). Same columns and conflict rule as
-- InsertAgent (sql/events.sql), which the group commit falls back to, row
-- by row, when a group holds an event id already buffered.

-- name: insert_agent_rows
INSERT INTO agent_data_buffer (event_id, seq, type, class, payload, size, file_size, created_at)
VALUES {rows}
ON CONFLICT (event_id) DO NOTHING;
