-- Realms and resolvers: where users come from. A resolver is a user source (the internal user
-- store, a passwd-style file, an LDAP directory); a realm is an ordered list of resolvers, asked
-- in priority order (lowest first, first hit wins). Internal users get password verifiers.
-- No column holds a password in the clear: an LDAP bind password is AES-GCM sealed under the
-- 'token-seal' HSM key (AAD bound to the resolver's name); a user's password is kept as an
-- HMAC-SHA-256 verifier under the 'pin-verifier' HSM key.

CREATE TABLE resolver (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT    NOT NULL UNIQUE,
    kind                 TEXT    NOT NULL CHECK (kind IN ('internal', 'passwd', 'ldap')),
    options              TEXT    NOT NULL,  -- JSON; never a secret
    sealed_bind_password BLOB,              -- ldap only; NULL: anonymous bind or no password
    created_at           INTEGER NOT NULL,  -- unix seconds
    updated_at           INTEGER NOT NULL
);

CREATE TABLE realm_resolver (
    realm_id    INTEGER NOT NULL REFERENCES realm(id) ON DELETE CASCADE,
    resolver_id INTEGER NOT NULL REFERENCES resolver(id) ON DELETE RESTRICT,
    priority    INTEGER NOT NULL CHECK (priority >= 1),  -- 1 is asked first
    PRIMARY KEY (realm_id, resolver_id),
    UNIQUE (realm_id, priority)
);
CREATE INDEX realm_resolver_by_resolver ON realm_resolver(resolver_id);

-- HMAC-SHA-256 under system_key 'pin-verifier', bound to realm and login; NULL: no password.
ALTER TABLE app_user ADD COLUMN password_verifier BLOB;
