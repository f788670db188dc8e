-- Users of the web console: see migrations/0026_console_users.sql (SQLite), of which this is
-- the same table.
CREATE TABLE console_user (
    name                TEXT COLLATE "C"    PRIMARY KEY,
    password_verifier   BYTEA   NOT NULL,
    role                TEXT    NOT NULL CHECK (role IN ('admin', 'helpdesk', 'auditor')),
    realms              TEXT    NOT NULL DEFAULT '',
    session_epoch       BYTEA   NOT NULL,
    created_at          BIGINT  NOT NULL,
    last_login_ms       BIGINT
);
