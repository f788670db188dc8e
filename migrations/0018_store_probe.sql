-- One row that readiness checks update and commit, so a database that can no longer commit
-- (disk full, read-only file system, I/O errors) stops being ready instead of failing the
-- next authentication. Holds nothing but the time of the last probe.
CREATE TABLE store_probe (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    at_ms   INTEGER NOT NULL
);
INSERT INTO store_probe (id, at_ms) VALUES (1, 0);
