-- Agent Gateway buffer schema (SQLite, WAL). Applied at every start; every
-- statement is idempotent. Tables follow the seed's agent_data_buffer and
-- device_data_buffer, plus event id, sequence, batch token and size columns.
-- created_at holds Unix milliseconds. uploaded_at stays NULL: a row is deleted
-- once the cloud answered 2xx for its batch (deleting beats marking).
--
-- Which batch a row travels in is recorded once per batch, not per row: a
-- stream's rows are claimed in id order, and upload_batches holds each
-- batch's token with its [first_id, last_id] range (sql/raw/streams.sql explains
-- the claim cursor). A claim therefore writes one record instead of rewriting
-- every row; batch_token stays NULL (gateways before this layout, format 1,
-- set it on each row, and Open upgrades such files). retry_count is
-- incremented on the rows of a batch whose upload failed.

CREATE TABLE IF NOT EXISTS agent_data_buffer (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    type        TEXT    NOT NULL, -- active_window, visited_site, user_session, screenshot
    class       TEXT    NOT NULL, -- log or screenshot: the upload stream
    payload     TEXT    NOT NULL, -- the event as JSON, without seq
    size        INTEGER NOT NULL, -- accounted bytes: payload + image file + row overhead
    file_size   INTEGER NOT NULL DEFAULT 0,
    batch_token TEXT    NULL,     -- format 1 only; see above
    created_at  INTEGER NOT NULL, -- Unix milliseconds
    uploaded_at INTEGER NULL,
    retry_count INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS agent_data_buffer_event_id ON agent_data_buffer (event_id);
-- Format 1 kept an index of unclaimed rows; claims now read by id.
DROP INDEX IF EXISTS agent_data_buffer_unclaimed;
-- Screenshots are few among many log rows: the screenshots stream finds its
-- rows through this index, the logs stream by scanning ids.
CREATE INDEX IF NOT EXISTS agent_data_buffer_screenshots ON agent_data_buffer (id) WHERE class = 'screenshot';

CREATE TABLE IF NOT EXISTS device_data_buffer (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    device_id    TEXT    NOT NULL,
    adapter_type TEXT    NOT NULL,
    class        TEXT    NOT NULL DEFAULT 'device',
    payload      TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    batch_token  TEXT    NULL,    -- format 1 only; see above
    created_at   INTEGER NOT NULL, -- Unix milliseconds
    uploaded_at  INTEGER NULL,
    retry_count  INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS device_data_buffer_event_id ON device_data_buffer (event_id);
DROP INDEX IF EXISTS device_data_buffer_unclaimed;

-- A batch claimed for upload: its rows are those of the stream's class with
-- ids in [first_id, last_id]. The token is the Idempotency-Key; it is
-- committed together with the claim, so a retry after a crash sends the same
-- rows under the same token.
CREATE TABLE IF NOT EXISTS upload_batches (
    token       TEXT    PRIMARY KEY,
    stream      TEXT    NOT NULL, -- logs, screenshots, device-events
    event_count INTEGER NOT NULL,
    first_id    INTEGER NOT NULL DEFAULT 0, -- row id range of the claimed rows (0, 0 for a
    last_id     INTEGER NOT NULL DEFAULT 0, -- batch that carries only a drop report)
    bytes       INTEGER NOT NULL,
    drops       TEXT    NOT NULL DEFAULT '[]', -- drop report carried by this batch (JSON)
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NULL,
    created_at  INTEGER NOT NULL
);

-- Drops not yet reported to the cloud (pending) and since the buffer was
-- created (total), by reason and class.
CREATE TABLE IF NOT EXISTS drop_counters (
    reason   TEXT    NOT NULL,
    class    TEXT    NOT NULL,
    pending  INTEGER NOT NULL DEFAULT 0,
    total    INTEGER NOT NULL DEFAULT 0,
    first_at INTEGER NULL,
    last_at  INTEGER NULL,
    PRIMARY KEY (reason, class)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS gateway_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO gateway_state (key, value) VALUES ('next_seq', '1') ON CONFLICT (key) DO NOTHING;

-- Dead letters: single events the cloud refused permanently (a 4xx after
-- bisection) or that kept failing with a server error while the cloud was
-- otherwise healthy. Each was MOVED here from its stream in one transaction
-- (and counted as a drop with its reason), so it no longer blocks the stream
-- and can be inspected and replayed (Buffer.ReplayDeadLetters gives it a new
-- seq). A screenshot's image file is kept in the dead-letters directory beside
-- screenshots/. Bounded by count and bytes (oldest purged first); expires
-- retention after dead_at.
CREATE TABLE IF NOT EXISTS dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL,
    stream       TEXT    NOT NULL, -- logs, screenshots, device-events
    class        TEXT    NOT NULL,
    type         TEXT    NOT NULL, -- event type; the adapter type for device events
    seq          INTEGER NOT NULL, -- the seq it was sent (and reported dropped) under
    payload      TEXT    NOT NULL, -- the event as JSON, without seq
    size         INTEGER NOT NULL, -- accounted bytes, as in its stream
    file_size    INTEGER NOT NULL DEFAULT 0,
    device_id    TEXT    NOT NULL DEFAULT '',
    adapter_type TEXT    NOT NULL DEFAULT '',
    reason       TEXT    NOT NULL, -- drop reason: rejected_by_cloud, persistent_failure
    last_error   TEXT    NOT NULL, -- the cloud's last answer (at most 1000 bytes)
    attempts     INTEGER NOT NULL, -- upload attempts of its last batch
    created_at   INTEGER NOT NULL, -- when the gateway buffered it (Unix ms)
    dead_at      INTEGER NOT NULL  -- when it was set aside (Unix ms)
);
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_event_id ON dead_letters (event_id);

-- Enrolled desktop agents (format 3): one credential per agent uid, stored
-- only as its SHA-256 (the agent holds the credential itself; it is shown
-- once, in the enrolment answer). Re-enrolling an agent replaces its row,
-- which revokes the old credential; a revocation from the cloud deletes it.
-- reported_at is NULL until the cloud was told the agent exists.
CREATE TABLE IF NOT EXISTS agent_credentials (
    agent_uid       TEXT    PRIMARY KEY,
    credential_hash BLOB    NOT NULL UNIQUE CHECK (length(credential_hash) = 32),
    computer_name   TEXT    NOT NULL DEFAULT '',
    enrolled_at     INTEGER NOT NULL, -- Unix milliseconds
    reported_at     INTEGER NULL
) WITHOUT ROWID;

-- Trace contexts (issue 19): the W3C traceparent of the traced agent batch
-- that brought a run of events, by the run's sequence range (one row per
-- traced append; none while tracing is off, so the hot path is unchanged).
-- The uplink's span continues the first context of a batch and links the
-- others; the rows go once their events' batch is acknowledged, or after a
-- day (events dead-lettered or dropped).
CREATE TABLE IF NOT EXISTS trace_contexts (
    first_seq    INTEGER PRIMARY KEY,
    last_seq     INTEGER NOT NULL,
    class        TEXT    NOT NULL, -- the events' class: log, screenshot, device
    trace_parent TEXT    NOT NULL,
    created_at   INTEGER NOT NULL  -- Unix milliseconds
);
