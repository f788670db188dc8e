-- Challenge-response: challenges (one per token and request, sharing a transaction id) and the
-- durable delivery queue of their messages with every attempt. Message texts carry codes, so
-- they are stored only sealed (AES-GCM under 'token-seal', AAD bound to the delivery).

CREATE TABLE challenge (
    id              INTEGER PRIMARY KEY,
    transaction_id  TEXT    NOT NULL,          -- 20 digits, shared by the challenges of one request
    token_id        INTEGER NOT NULL REFERENCES token(id) ON DELETE CASCADE,
    counter         INTEGER NOT NULL,          -- the HOTP counter whose code was sent
    created_ms      INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL,
    answered_ms     INTEGER,                   -- set once, by compare-and-set, when the code is accepted
    UNIQUE (transaction_id, token_id)
);
CREATE INDEX challenge_by_transaction ON challenge(transaction_id);
CREATE INDEX challenge_by_expiry ON challenge(expires_ms);

CREATE TABLE delivery (
    id              INTEGER PRIMARY KEY,
    challenge_id    INTEGER REFERENCES challenge(id) ON DELETE SET NULL,
    token_type      TEXT    NOT NULL,          -- chooses the gateway route
    serial          TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,          -- phone number or address
    sealed_message  BLOB    NOT NULL,          -- subject, text and variables (JSON), sealed
    status          TEXT    NOT NULL CHECK (status IN ('queued', 'sending', 'delivered', 'failed', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL,
    delivered_via   TEXT,
    last_error      TEXT,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX delivery_due ON delivery(status, next_attempt_ms);

CREATE TABLE delivery_attempt (
    id              INTEGER PRIMARY KEY,
    delivery_id     INTEGER NOT NULL REFERENCES delivery(id) ON DELETE CASCADE,
    at_ms           INTEGER NOT NULL,
    gateway         TEXT    NOT NULL,
    result          TEXT    NOT NULL CHECK (result IN ('delivered', 'failed')),
    detail          TEXT
);
CREATE INDEX delivery_attempt_by_delivery ON delivery_attempt(delivery_id);

-- Where a challenge-response token's codes go (phone number or address); NULL: the user's.
ALTER TABLE token ADD COLUMN recipient TEXT;
