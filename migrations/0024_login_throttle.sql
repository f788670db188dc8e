-- The /auth login backoff, kept in the database so that every appliance on one database counts
-- a client's failures together (and a restart does not forget them): recent failures per peer
-- (a uid, an address, an IPv6 /64) and the names a peer logged in as successfully.
CREATE TABLE login_failure (
    id      INTEGER PRIMARY KEY,
    peer    TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE INDEX login_failure_by_peer ON login_failure(peer, at_ms);
CREATE INDEX login_failure_by_time ON login_failure(at_ms);

CREATE TABLE login_known (
    peer    TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL,
    PRIMARY KEY (peer, name)
);
CREATE INDEX login_known_by_time ON login_known(at_ms);
