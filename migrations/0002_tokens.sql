-- Token engine: realms and a minimal internal user store, the HSM keys the appliance keeps for
-- itself, users' OTP tokens, and the audit of authentication and token administration.
-- No column ever holds a seed or a PIN: seeds are AES-GCM sealed by an HSM key (bound to the
-- token's serial), PINs are kept as HMAC verifiers under a non-extractable HSM key.

CREATE TABLE realm (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    is_default  INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    created_at  INTEGER NOT NULL          -- unix seconds
);
CREATE UNIQUE INDEX realm_one_default ON realm(is_default) WHERE is_default = 1;
INSERT INTO realm (name, is_default, created_at) VALUES ('default', 1, CAST(strftime('%s', 'now') AS INTEGER));

-- Users of the internal user store. Directory resolvers (LDAP, flat files) come later.
CREATE TABLE app_user (
    id          INTEGER PRIMARY KEY,
    realm_id    INTEGER NOT NULL REFERENCES realm(id) ON DELETE RESTRICT,
    login       TEXT    NOT NULL,
    email       TEXT,
    phone       TEXT,
    given_name  TEXT,
    surname     TEXT,
    created_at  INTEGER NOT NULL,
    UNIQUE (realm_id, login)
);

-- Keys the appliance generated on the token for its own use, by role
-- ('token-seal': AES-256 sealing seeds; 'pin-verifier': HMAC key for PIN verifiers).
CREATE TABLE system_key (
    role        TEXT    PRIMARY KEY,
    hsm_key_id  TEXT    NOT NULL UNIQUE,  -- hex CKA_ID on the token
    created_at  INTEGER NOT NULL
);

CREATE TABLE token (
    id              INTEGER PRIMARY KEY,
    serial          TEXT    NOT NULL UNIQUE,
    type            TEXT    NOT NULL,          -- hotp, totp, ...
    plugin          TEXT    NOT NULL,          -- the token plugin that checks it
    params          TEXT    NOT NULL,          -- JSON options passed to the plugin (digits, hash, step)
    otp_window      INTEGER NOT NULL CHECK (otp_window >= 0),
    sealed_seed     BLOB    NOT NULL,          -- AES-GCM under system_key 'token-seal', AAD bound to serial
    -- HOTP: the next counter that may be accepted. TOTP: the first time step that may be
    -- accepted (last accepted step + 1). Only ever advanced, by compare-and-set.
    counter         INTEGER NOT NULL DEFAULT 0 CHECK (counter >= 0),
    drift           INTEGER NOT NULL DEFAULT 0, -- TOTP: learned clock drift in steps
    pin_verifier    BLOB,                      -- HMAC-SHA-256 under system_key 'pin-verifier'; NULL: no PIN
    fail_count      INTEGER NOT NULL DEFAULT 0 CHECK (fail_count >= 0),
    max_fail        INTEGER NOT NULL DEFAULT 10 CHECK (max_fail >= 1),
    fail_clear_s    INTEGER NOT NULL DEFAULT 0 CHECK (fail_clear_s >= 0), -- 0: only an admin reset clears
    last_fail_ms    INTEGER,
    last_auth_ms    INTEGER,
    active          INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    revoked         INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    user_id         INTEGER REFERENCES app_user(id) ON DELETE SET NULL,
    description     TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL
);
CREATE INDEX token_by_user ON token(user_id);

-- One row per authentication and per token administration step; issue 7 chains these rows.
CREATE TABLE auth_audit (
    id          INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    caller      TEXT    NOT NULL,          -- uid:N on a socket, ip:ADDR on the HTTP listener
    action      TEXT    NOT NULL,          -- validate/check, token/init, token/reset, plugin/restart, ...
    serial      TEXT,
    login       TEXT,
    realm       TEXT,
    result      TEXT    NOT NULL,          -- accept | reject | ok | refused | error
    detail      TEXT
);
