-- The audit trail as one hash chain over both audit tables (issue 7). Every row written to
-- auth_audit or signature_audit gets a link here in the same transaction:
--   hash = SHA-256(previous link's hash || the row's canonical encoding)
-- so editing, deleting, inserting or reordering rows breaks the chain at the first bad row.
-- Links carry the row's time so retention can cut by age without reading both tables.
CREATE TABLE audit_chain (
    seq     INTEGER PRIMARY KEY,
    tbl     TEXT    NOT NULL CHECK (tbl IN ('auth', 'signature')),
    row_id  INTEGER NOT NULL,
    at_ms   INTEGER NOT NULL,
    hash    BLOB    NOT NULL CHECK (length(hash) = 32),
    UNIQUE (tbl, row_id)
);

-- Links vouched for by the audit key in the HSM: whoever rewrites rows and recomputes the
-- chain after them cannot forge these. `kind` says why it was made.
CREATE TABLE audit_checkpoint (
    seq        INTEGER PRIMARY KEY,
    hash       BLOB    NOT NULL CHECK (length(hash) = 32),
    at_ms      INTEGER NOT NULL,
    signature  BLOB    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('periodic', 'retention', 'backfill'))
);

-- Where the chain starts once retention has removed its beginning: the signed checkpoint of
-- the last removed link. At most one row.
CREATE TABLE audit_anchor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER NOT NULL,
    hash       BLOB    NOT NULL CHECK (length(hash) = 32),
    at_ms      INTEGER NOT NULL,
    signature  BLOB    NOT NULL,
    removed    INTEGER NOT NULL            -- links removed by retention so far, in all
);

CREATE INDEX audit_chain_by_time ON audit_chain(at_ms);

-- Rows written before this migration are outside the chain (nothing can vouch for them now):
-- verification reports how many there are and skips them; retention removes them first.
CREATE TABLE audit_legacy (
    tbl     TEXT    PRIMARY KEY CHECK (tbl IN ('auth', 'signature')),
    max_id  INTEGER NOT NULL
);
INSERT INTO audit_legacy (tbl, max_id) SELECT 'auth', coalesce(max(id), 0) FROM auth_audit;
INSERT INTO audit_legacy (tbl, max_id) SELECT 'signature', coalesce(max(id), 0) FROM signature_audit;
