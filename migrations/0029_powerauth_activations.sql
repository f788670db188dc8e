-- PowerAuth activations (issue 19, part 2). Reference schema: pa_activation,
-- pa_activation_history, pa_temporary_key, and the ECIES replay check the reference server
-- keeps in memory (here a table, so every node of a cluster refuses the same replay).
--
-- One row per activation. What the reference keeps in the clear is either sealed or a verifier:
-- - the activation code only as `code_lookup`, an HMAC under the HSM's pin-verifier key (so the
--   database alone does not let anyone activate), cleared once the device has exchanged keys;
-- - the activation OTP only as `otp_verifier` (same key, its own domain);
-- - the server's private key and the master secret only inside `sealed_secrets`, AES-GCM
--   under the HSM's token-seal key with AAD naming the activation id.
-- The row is sealed (`row_mac`, row_seals.rs): its state, counter and failure count decide
-- whether a signature is accepted.
CREATE TABLE powerauth_activation (
    id                  INTEGER PRIMARY KEY,
    activation_id       TEXT    NOT NULL UNIQUE,
    application_id      INTEGER NOT NULL REFERENCES powerauth_application(application_id) ON DELETE RESTRICT,
    user_id             TEXT    NOT NULL,
    state               TEXT    NOT NULL
        CHECK (state IN ('CREATED', 'PENDING_COMMIT', 'ACTIVE', 'BLOCKED', 'REMOVED')),
    code_lookup         BLOB    UNIQUE,
    otp_verifier        BLOB,
    otp_validation      TEXT    NOT NULL CHECK (otp_validation IN ('NONE', 'ON_KEY_EXCHANGE', 'ON_COMMIT')),
    app_key             TEXT,
    protocol_version    TEXT,
    name                TEXT,
    platform            TEXT,
    device_info         TEXT,
    extras              TEXT,
    device_public_key   BLOB,
    server_public_key   BLOB,
    sealed_secrets      BLOB,
    ctr_data            BLOB,
    counter             INTEGER NOT NULL DEFAULT 0,
    failed_attempts     INTEGER NOT NULL DEFAULT 0,
    max_failed_attempts INTEGER NOT NULL,
    blocked_reason      TEXT,
    created_ms          INTEGER NOT NULL,
    expires_ms          INTEGER,
    changed_ms          INTEGER NOT NULL,
    last_used_ms        INTEGER,
    row_mac             BLOB
);
CREATE INDEX powerauth_activation_user ON powerauth_activation (application_id, user_id);

-- pa_activation_history: every state change, who made it and why.
CREATE TABLE powerauth_activation_history (
    id              INTEGER PRIMARY KEY,
    activation_id   TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    reason          TEXT,
    actor           TEXT    NOT NULL,
    at_ms           INTEGER NOT NULL
);
CREATE INDEX powerauth_activation_history_of ON powerauth_activation_history (activation_id, id);

-- pa_temporary_key (protocol 3.3): ECIES keys handed out by /pa/v3/keystore/create, each for one
-- APP_KEY (and activation), for a few minutes. The private key only sealed, its AAD binding key
-- id, APP_KEY and activation, so a row edited to another application does not open.
CREATE TABLE powerauth_temporary_key (
    key_id              TEXT    PRIMARY KEY,
    app_key             TEXT    NOT NULL,
    activation_id       TEXT,
    public_key          BLOB    NOT NULL,
    sealed_private_key  BLOB    NOT NULL,
    expires_ms          INTEGER NOT NULL
);
CREATE INDEX powerauth_temporary_key_expiry ON powerauth_temporary_key (expires_ms);

-- ECIES requests and MAC-token nonces seen: a digest of what makes a request unique (scope,
-- ephemeral key or token, nonce, timestamp), kept until the request would be refused as too
-- old anyway. The primary key makes the second of two concurrent copies fail on every node.
CREATE TABLE powerauth_replay (
    digest      BLOB    PRIMARY KEY,
    expires_ms  INTEGER NOT NULL
);
CREATE INDEX powerauth_replay_expiry ON powerauth_replay (expires_ms);
