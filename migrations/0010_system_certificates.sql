-- Certificates the appliance holds for its own HSM keys (the TLS server key of the HTTP
-- listener), issued by the appliance CA and renewed before they expire.
CREATE TABLE system_certificate (
    role            TEXT    PRIMARY KEY REFERENCES system_key(role) ON DELETE CASCADE,
    certificate     BLOB    NOT NULL,          -- DER
    names           TEXT    NOT NULL,          -- JSON list of the DNS names and addresses it is for
    not_after       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
