-- Periodic jobs (audit checkpoints, audit retention, challenge clean-up): the last run of each,
-- so operators see when a job last ran and how it went, across restarts.
CREATE TABLE job_run (
    name            TEXT    PRIMARY KEY,
    last_started_ms INTEGER NOT NULL,
    last_ended_ms   INTEGER,
    last_ok         INTEGER,               -- 1 ok, 0 failed, NULL still running
    last_detail     TEXT,
    runs            INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0
);

-- What the audit records besides caller, action, serial, user, realm, result and info: the
-- resolver the user came from, the client address, the policies that decided, and how long
-- the request took. Part of each row's chain link.
ALTER TABLE auth_audit ADD COLUMN resolver TEXT;
ALTER TABLE auth_audit ADD COLUMN client TEXT;
ALTER TABLE auth_audit ADD COLUMN policies TEXT;
ALTER TABLE auth_audit ADD COLUMN duration_ms INTEGER;
