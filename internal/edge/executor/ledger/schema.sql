-- The executor's ledger: one row per command id it ran (ok = 1 with its
-- result, ok = 0 with its error), so a redelivery is answered from here.
CREATE TABLE IF NOT EXISTS executed_commands (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    result      TEXT,
    error       TEXT,
    executed_at TEXT NOT NULL
);
