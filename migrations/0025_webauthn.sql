-- WebAuthn and passkey tokens: the credential each registered. Nothing here is secret (a
-- public key, an id the authenticator chose, what its attestation proved); the row is sealed
-- like a certificate token's certificate, because it decides whose assertion a check accepts.
-- The sign count is the token's `counter` (moved by the accept's compare-and-set). The
-- credential id is unique, which also makes it the index a usernameless check finds its token by.
CREATE TABLE webauthn_credential (
    token_id        INTEGER PRIMARY KEY REFERENCES token(id) ON DELETE CASCADE,
    credential_id   BLOB    NOT NULL UNIQUE,
    public_key      BLOB    NOT NULL,          -- COSE_Key
    alg             INTEGER NOT NULL,          -- COSE algorithm: -7 ES256, -8 EdDSA, -257 RS256
    aaguid          TEXT    NOT NULL,          -- the authenticator model, 32 hex characters
    rp_id           TEXT    NOT NULL,          -- the relying party it was registered for
    user_handle     BLOB,                      -- the user.id given at registration
    attestation     TEXT    NOT NULL,          -- format/type: none/none, packed/self, packed/basic-trusted, ...
    flags           INTEGER NOT NULL,          -- authenticatorData's flags at registration (UV, BE, BS)
    created_at      INTEGER NOT NULL,
    row_mac         BLOB
);

-- A webauthn challenge keeps the bytes the authenticator must sign over in `nonce`, as a
-- certificate token's does; it reserves no counter (the counter is the sign count).

-- A sign-in challenge bound to no token: a usernameless passkey sign-in (privacyIDEA's
-- /validate/initialize). `nonce` holds the bytes the authenticator signs over; the first
-- credential whose answer verifies spends it (compare-and-set on `answered_ms`).
CREATE TABLE sign_in_challenge (
    id                  INTEGER PRIMARY KEY,
    transaction_id      TEXT    NOT NULL UNIQUE,
    nonce               BLOB    NOT NULL,
    user_verification   TEXT    NOT NULL,   -- required | preferred | discouraged, as asked
    created_ms          INTEGER NOT NULL,
    expires_ms          INTEGER NOT NULL,
    answered_ms         INTEGER
);
CREATE INDEX sign_in_challenge_by_expiry ON sign_in_challenge(expires_ms);
