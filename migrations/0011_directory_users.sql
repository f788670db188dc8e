-- Users found through a realm's resolvers (LDAP, a passwd file, another realm's internal
-- users) get an app_user row when a token is assigned to them, so tokens keep one owner
-- reference. `resolver` names where the user lives; NULL marks the internal user store's own
-- users, the only rows internal resolvers list.
ALTER TABLE app_user ADD COLUMN resolver TEXT;
