-- The twin of SQLite's 0023: the number every change to a table that grants power moves on,
-- which appliances sharing the database poll to reload what another appliance changed.
CREATE TABLE config_version (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
