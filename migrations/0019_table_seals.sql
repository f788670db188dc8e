-- Seals of the tables that grant power (applications, key versions, integrations, grants,
-- policies): an HMAC under the HSM key labelled countersign/system/table-seal over each whole
-- table, renewed in the transaction of every change the appliance makes and checked before
-- the table is used. A change made outside the appliance no longer verifies.
CREATE TABLE table_seal (
    name          TEXT    PRIMARY KEY,
    mac           BLOB    NOT NULL,
    sealed_at_ms  INTEGER NOT NULL
);
