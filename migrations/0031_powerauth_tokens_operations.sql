-- PowerAuth MAC tokens and operations (issue 19, part 3). Reference schema: pa_token,
-- pa_operation_template, pa_operation, pa_operation_application.
--
-- pa_token: a token a device made with /pa/v3/token/create, for the X-PowerAuth-Token header.
-- The reference keeps the token secret in the clear; here it is only `sealed_secret`, AES-GCM
-- under the HSM's token-seal key with AAD naming the token id and its activation, so a secret
-- moved to another row does not open. The row is sealed (`row_mac`, row_seals.rs): it says
-- which activation a token speaks for and with which signature type it was made.
CREATE TABLE powerauth_token (
    id              INTEGER PRIMARY KEY,
    token_id        TEXT    NOT NULL UNIQUE,
    activation_id   TEXT    NOT NULL REFERENCES powerauth_activation(activation_id) ON DELETE RESTRICT,
    sealed_secret   BLOB    NOT NULL,
    signature_type  TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    row_mac         BLOB
);
CREATE INDEX powerauth_token_activation ON powerauth_token (activation_id);

-- pa_operation_template: what an operation of a kind looks like (its data template with
-- ${parameter} placeholders), which signature types may approve it, how many failed
-- approvals fail it and how long it lives. Sealed as a whole table (seals.rs): it decides how
-- strongly future operations are approved.
CREATE TABLE powerauth_operation_template (
    id                  INTEGER PRIMARY KEY,
    template_name       TEXT    NOT NULL UNIQUE,
    operation_type      TEXT    NOT NULL,
    data_template       TEXT    NOT NULL,
    signature_types     TEXT    NOT NULL,   -- comma-separated, as pa_operation_template
    max_failure_count   INTEGER NOT NULL CHECK (max_failure_count > 0),
    expiration_s        INTEGER NOT NULL CHECK (expiration_s > 0),
    risk_flags          TEXT,
    created_ms          INTEGER NOT NULL
);

-- pa_operation: a login or payment the bank's back-end asks a user to approve on their phone.
-- Its status, failure count and what may approve it decide an approval, so the row is sealed
-- (`row_mac`), and every change is a compare-and-set on status and failure count in the
-- transaction of its audit row. `applications` (the application names, sorted, comma-
-- separated) is the sealed list decisions read; pa_operation_application below indexes it.
CREATE TABLE powerauth_operation (
    id                  INTEGER PRIMARY KEY,
    operation_id        TEXT    NOT NULL UNIQUE,
    user_id             TEXT    NOT NULL,
    applications        TEXT    NOT NULL,
    external_id         TEXT,
    activation_id       TEXT,
    operation_type      TEXT    NOT NULL,
    template_name       TEXT    NOT NULL,
    data                TEXT    NOT NULL,
    parameters          TEXT,               -- JSON object
    additional_data     TEXT,               -- JSON object
    status              TEXT    NOT NULL
        CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED', 'FAILED', 'CANCELED', 'EXPIRED')),
    status_reason       TEXT,
    signature_types     TEXT    NOT NULL,   -- comma-separated
    failure_count       INTEGER NOT NULL DEFAULT 0,
    max_failure_count   INTEGER NOT NULL,
    risk_flags          TEXT,
    created_ms          INTEGER NOT NULL,
    expires_ms          INTEGER NOT NULL,
    finalized_ms        INTEGER,
    row_mac             BLOB
);
CREATE INDEX powerauth_operation_user ON powerauth_operation (user_id, status);
CREATE INDEX powerauth_operation_external ON powerauth_operation (external_id);

-- pa_operation_application: which applications' activations may see and approve an operation.
CREATE TABLE powerauth_operation_application (
    operation_id    INTEGER NOT NULL REFERENCES powerauth_operation(id) ON DELETE CASCADE,
    application_id  INTEGER NOT NULL REFERENCES powerauth_application(application_id) ON DELETE RESTRICT,
    PRIMARY KEY (operation_id, application_id)
);
CREATE INDEX powerauth_operation_application_app ON powerauth_operation_application (application_id, operation_id);
