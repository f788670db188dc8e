-- Push tokens (privacyIDEA's `push` type): the state of each push challenge, and when each
-- phone was last seen. The token row itself holds the phone's public key, the server key's id
-- and the enrolment's state in its (sealed) params.
--
-- A push challenge is answered by the phone (accept or decline, signed with its key) and then
-- used once by `/validate/check`, which spends the `challenge` row by compare-and-set as for
-- any challenge. Whether the phone accepted decides a login, so the row is sealed like a token
-- row (HSM MAC over every column, renewed with each change): a status set to `accepted` in the
-- database is refused, and the phone's signature kept with it is verified again at the
-- finalising check.
CREATE TABLE push_challenge (
    challenge_id    INTEGER PRIMARY KEY REFERENCES challenge(id) ON DELETE CASCADE,
    token_id        INTEGER NOT NULL REFERENCES token(id) ON DELETE CASCADE,
    transaction_id  TEXT    NOT NULL,
    nonce           TEXT    NOT NULL,          -- the Base32 challenge the phone signs
    expires_ms      INTEGER NOT NULL,
    payload         TEXT    NOT NULL,          -- what the phone is shown, signed by the server key (JSON)
    presence_answer TEXT,                      -- number matching: the option the login screen shows
    status          TEXT    NOT NULL CHECK (status IN ('open', 'accepted', 'declined')),
    reason          TEXT,                      -- why declined: the phone's decline, a wrong number
    answer_signature TEXT,                     -- the phone's signature of its answer (Base32)
    answered_ms     INTEGER,
    row_mac         BLOB,
    UNIQUE (token_id, nonce)
);
CREATE INDEX push_challenge_by_transaction ON push_challenge(transaction_id);

-- When a push token's phone last polled and last answered; for the help desk. Not sealed:
-- nothing is decided on it.
CREATE TABLE push_device (
    token_id        INTEGER PRIMARY KEY REFERENCES token(id) ON DELETE CASCADE,
    last_poll_ms    INTEGER,
    last_answer_ms  INTEGER
);
