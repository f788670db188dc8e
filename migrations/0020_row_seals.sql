-- Row seals (issue 13, finding 10): tokens, their certificates and users are too many and, for tokens, change too
-- often on the check path for whole-table seals, so each row carries an HMAC under the
-- table-seal key over all of its columns (row_mac). A user row also counts its tokens
-- (token_count), so deleting some or all of a user's token rows no longer verifies.
ALTER TABLE token ADD COLUMN row_mac BLOB;
ALTER TABLE app_user ADD COLUMN token_count INTEGER NOT NULL DEFAULT 0 CHECK (token_count >= 0);
ALTER TABLE app_user ADD COLUMN row_mac BLOB;
-- A certificate token's certificate decides whose card's signature is accepted.
ALTER TABLE token_certificate ADD COLUMN row_mac BLOB;
UPDATE app_user SET token_count = (SELECT count(*) FROM token WHERE token.user_id = app_user.id);
