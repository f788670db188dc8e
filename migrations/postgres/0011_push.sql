-- The twin of SQLite's 0032: push challenges (row-sealed) and when each phone was last seen.
CREATE TABLE push_challenge (
    challenge_id    BIGINT PRIMARY KEY REFERENCES challenge(id) ON DELETE CASCADE,
    token_id        BIGINT NOT NULL REFERENCES token(id) ON DELETE CASCADE,
    transaction_id  TEXT COLLATE "C" NOT NULL,
    nonce           TEXT COLLATE "C" NOT NULL,
    expires_ms      BIGINT NOT NULL,
    payload         TEXT NOT NULL,
    presence_answer TEXT COLLATE "C",
    status          TEXT COLLATE "C" NOT NULL CHECK (status IN ('open', 'accepted', 'declined')),
    reason          TEXT,
    answer_signature TEXT COLLATE "C",
    answered_ms     BIGINT,
    row_mac         BYTEA,
    UNIQUE (token_id, nonce)
);
CREATE INDEX push_challenge_by_transaction ON push_challenge(transaction_id);

CREATE TABLE push_device (
    token_id        BIGINT PRIMARY KEY REFERENCES token(id) ON DELETE CASCADE,
    last_poll_ms    BIGINT,
    last_answer_ms  BIGINT
);
