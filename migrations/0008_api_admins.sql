-- Administrators of the privacyIDEA-compatible API (`/auth` issues them a JWT). Their
-- passwords are stored only as HMAC verifiers under the HSM's 'pin-verifier' key.
CREATE TABLE api_admin (
    name                TEXT    PRIMARY KEY,
    password_verifier   BLOB    NOT NULL,
    created_at          INTEGER NOT NULL,
    last_login_ms       INTEGER
);
