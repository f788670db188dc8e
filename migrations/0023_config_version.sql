-- One number that every change to a table that grants power moves on (every reseal of a sealed
-- table, in the change's transaction). Appliances sharing one database poll it to learn that
-- another appliance changed policies, realms, resolvers, keys or grants, and reload them.
CREATE TABLE config_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
