-- Service accounts of the HTTP API (an IdP plugin, a RADIUS server): they present an API key
-- in the Authorization header. The key is shown once; only its HMAC verifier (HSM key
-- 'pin-verifier') and a public lookup prefix are stored.
CREATE TABLE service_account (
    name            TEXT    PRIMARY KEY,
    key_prefix      TEXT    NOT NULL UNIQUE,   -- the public part of the key, for lookup
    key_verifier    BLOB    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    last_used_ms    INTEGER
);
