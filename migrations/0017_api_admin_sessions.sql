-- Sessions of API admins are bound to the admin row's session epoch: a random value set when
-- the admin is created and replaced at logout, so a session token dies with its admin (also
-- when an admin of the same name is created again) and at logout. Existing admins get a fresh
-- epoch here, which ends the sessions issued before this migration (they carry none).
ALTER TABLE api_admin ADD COLUMN session_epoch BLOB NOT NULL DEFAULT x'';
UPDATE api_admin SET session_epoch = randomblob(16);
