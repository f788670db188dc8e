-- Users of the web console (issue 18): principals of their own, not Unix uids and not API
-- admins. A password kept only as an HMAC verifier under the HSM's 'pin-verifier' key (its
-- own domain), a role, the realms a helpdesk user may act in, and the session epoch every
-- console session is bound to (replaced at sign-out and when the user is changed). The second
-- factor is an ordinary Countersign token of the internal user of the same name in the console
-- realm, checked by the validation engine. Sealed as a table: a role edited in the database
-- while the daemon is stopped must not take effect.
CREATE TABLE console_user (
    name                TEXT    PRIMARY KEY,
    password_verifier   BLOB    NOT NULL,
    role                TEXT    NOT NULL CHECK (role IN ('admin', 'helpdesk', 'auditor')),
    realms              TEXT    NOT NULL DEFAULT '',   -- helpdesk: the realms, comma-separated
    session_epoch       BLOB    NOT NULL,
    created_at          INTEGER NOT NULL,
    last_login_ms       INTEGER
);
