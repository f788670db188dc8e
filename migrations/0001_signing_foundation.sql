-- Signing foundation: applications with versioned master keypairs in the HSM, the local
-- integrations (Unix uids) allowed to use them, and the audit of every signing request.
-- No column ever holds private key material: keys are named by their PKCS#11 CKA_ID.

CREATE TABLE application (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    algorithm   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL          -- unix seconds
);

CREATE TABLE master_keypair (
    id              INTEGER PRIMARY KEY,
    application_id  INTEGER NOT NULL REFERENCES application(id) ON DELETE RESTRICT,
    version         INTEGER NOT NULL CHECK (version >= 1),
    algorithm       TEXT    NOT NULL,
    hsm_key_id      TEXT    NOT NULL UNIQUE,   -- hex CKA_ID on the token
    hsm_label       TEXT    NOT NULL,          -- CKA_LABEL, for operators using pkcs11-tool
    public_key      BLOB    NOT NULL,          -- SubjectPublicKeyInfo DER
    state           TEXT    NOT NULL CHECK (state IN ('active', 'retired')),
    created_at      INTEGER NOT NULL,
    retired_at      INTEGER,
    UNIQUE (application_id, version)
);
-- At most one active version per application.
CREATE UNIQUE INDEX master_keypair_one_active ON master_keypair(application_id) WHERE state = 'active';

CREATE TABLE integration (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    uid         INTEGER NOT NULL UNIQUE CHECK (uid >= 0),
    created_at  INTEGER NOT NULL
);

CREATE TABLE integration_grant (
    integration_id  INTEGER NOT NULL REFERENCES integration(id) ON DELETE CASCADE,
    application_id  INTEGER NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    granted_at      INTEGER NOT NULL,
    PRIMARY KEY (integration_id, application_id)
) WITHOUT ROWID;

CREATE TABLE signature_audit (
    id              INTEGER PRIMARY KEY,
    at_ms           INTEGER NOT NULL,          -- unix milliseconds
    uid             INTEGER NOT NULL,          -- caller's SO_PEERCRED uid
    pid             INTEGER,
    integration     TEXT,                      -- name at the time, NULL when unregistered
    operation       TEXT    NOT NULL,          -- sign | verify
    key_name        TEXT    NOT NULL,
    key_version     INTEGER,
    scheme          TEXT,
    hash            TEXT,
    input_kind      TEXT CHECK (input_kind IN ('message', 'digest')),
    input_sha256    BLOB,                      -- SHA-256 of what the caller sent, never the data
    result          TEXT    NOT NULL CHECK (result IN ('ok', 'invalid', 'denied', 'error')),
    detail          TEXT
);
