-- Message gateways: definitions (plugin, options, transport limits, sealed credentials) and the
-- ordered failover list of gateways per token type. Credentials are stored only sealed
-- (AES-GCM under the HSM key 'token-seal', AAD bound to the gateway's name).

CREATE TABLE gateway (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    plugin              TEXT    NOT NULL,          -- the gateway plugin that shapes messages
    options             TEXT    NOT NULL,          -- JSON options for the plugin (no secrets)
    transport           TEXT    NOT NULL,          -- JSON: allowed hosts, private targets, timeout, SMTP server
    credential_names    TEXT    NOT NULL,          -- JSON list of the credentials' names
    sealed_credentials  BLOB,                      -- the credentials (name -> value), sealed; NULL: none
    created_at          INTEGER NOT NULL
);

CREATE TABLE gateway_route (
    token_type  TEXT    NOT NULL,                  -- sms, email, ...
    position    INTEGER NOT NULL CHECK (position >= 1),
    gateway_id  INTEGER NOT NULL REFERENCES gateway(id) ON DELETE RESTRICT,
    PRIMARY KEY (token_type, position),
    UNIQUE (token_type, gateway_id)
);
