-- Hardware enrolment: the appliance CA, the cards it enrolled, certificate tokens, and the
-- nonces of PIV authentication challenges.

-- The appliance CA. Its private key lives in the HSM (hsm_key_id); the certificate is either
-- self-signed or issued by an external CA for the CSR (then NULL until imported).
CREATE TABLE ca (
    name            TEXT    PRIMARY KEY,       -- 'appliance'
    algorithm       TEXT    NOT NULL,          -- ec-p256 | ec-p384
    hsm_key_id      TEXT    NOT NULL UNIQUE,   -- hex CKA_ID of the key pair on the token
    subject         TEXT    NOT NULL,
    certificate     BLOB,                      -- DER; NULL while a CSR waits for an external CA
    csr             BLOB,                      -- DER PKCS#10, when one was made
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- A card the appliance enrolled (a YubiKey or a PIV smartcard), and the secrets it set on it.
CREATE TABLE device (
    id                      INTEGER PRIMARY KEY,
    kind                    TEXT    NOT NULL CHECK (kind IN ('yubikey', 'piv')),
    serial                  TEXT    NOT NULL,
    firmware                TEXT,
    management_key_alg      TEXT,              -- 3des | aes192 | aes128 | aes256; NULL: never changed
    -- AES-GCM under system key 'token-seal', AAD 'device/<kind>/<serial>/management-key'.
    sealed_management_key   BLOB,
    -- Written before the card is told to change its key, so a crash in between loses nothing;
    -- promoted to sealed_management_key once the card confirmed.
    sealed_pending_key      BLOB,
    sealed_puk              BLOB,              -- AAD '.../puk'; NULL when shown once or not changed
    last_reader             TEXT,
    enrolled_at             INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    UNIQUE (kind, serial)
);

-- OATH tokens written to a YubiKey, and certificate tokens, name their card.
ALTER TABLE token ADD COLUMN device_id INTEGER REFERENCES device(id) ON DELETE SET NULL;

-- The certificate of a certificate token (its private key never leaves the card).
CREATE TABLE token_certificate (
    token_id        INTEGER PRIMARY KEY REFERENCES token(id) ON DELETE CASCADE,
    slot            TEXT    NOT NULL,          -- 9a | 9c
    certificate     BLOB    NOT NULL,          -- DER, issued by the appliance CA
    attestation     BLOB,                      -- DER attestation certificate the card gave
    not_after       INTEGER NOT NULL,
    fingerprint     TEXT    NOT NULL           -- SHA-256 of the DER, hex
);

-- Certificate tokens answer a challenge by signing its nonce.
ALTER TABLE challenge ADD COLUMN nonce BLOB;
