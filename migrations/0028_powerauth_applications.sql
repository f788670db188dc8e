-- PowerAuth applications (issue 19, part 1). A PowerAuth application is a signing application
-- (`application`, algorithm ec-p256) whose master key pair is its `master_keypair` row: generated
-- in the HSM, CKA_SENSITIVE and non-extractable, named here only by its CKA_ID. This table marks
-- the application as PowerAuth's, which takes it out of the signing API: no integration may be
-- granted its key (the master key signs activation codes, which a PowerAuth SDK trusts).
-- Reference schema: pa_application (the row) and pa_master_keypair (master_keypair, with no
-- private key column: the private key never leaves the token).
CREATE TABLE powerauth_application (
    application_id  INTEGER PRIMARY KEY REFERENCES application(id) ON DELETE RESTRICT,
    created_at      INTEGER NOT NULL          -- unix seconds
);

-- pa_application_version: APP_KEY (16 random bytes, Base64; public, sent by the SDK in every
-- request) and APP_SECRET (16 random bytes, Base64; a shared secret), the latter only as
-- AES-GCM ciphertext under the HSM's token-seal key, its AAD binding application, version and
-- APP_KEY. Both tables grant power (which apps and versions may activate), so both are sealed.
CREATE TABLE powerauth_app_version (
    id              INTEGER PRIMARY KEY,
    application_id  INTEGER NOT NULL REFERENCES powerauth_application(application_id) ON DELETE RESTRICT,
    name            TEXT    NOT NULL,
    app_key         TEXT    NOT NULL UNIQUE,
    sealed_secret   BLOB    NOT NULL,
    supported       INTEGER NOT NULL CHECK (supported IN (0, 1)),
    created_at      INTEGER NOT NULL,
    UNIQUE (application_id, name)
);
