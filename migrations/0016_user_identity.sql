-- Tokens belong to a user as their resolver identifies them, not to the login string typed.
--
-- `app_user.resolver_uid`: the stable id the resolver gave a directory user (LDAP: the mapped
-- uid attribute, entryUUID by default, else the DN; passwd: the numeric uid). One row per
-- (resolver, stable id), whatever realm or spelling reached the user. Internal users are
-- identified by their row id and keep it NULL. Rows recorded before this migration keep NULL
-- until the daemon binds them (at start, and whenever a token is assigned to the user); until
-- then a check finds them by login under the resolver's matching rule (LDAP: any case).
ALTER TABLE app_user ADD COLUMN resolver_uid TEXT;
CREATE UNIQUE INDEX app_user_by_resolver_uid ON app_user(resolver, resolver_uid) WHERE resolver_uid IS NOT NULL;
CREATE INDEX app_user_unbound ON app_user(resolver, login) WHERE resolver IS NOT NULL AND resolver_uid IS NULL;

-- `auth_audit.owner`: the resolved user a check was about (`internal#<app_user id>`,
-- `<resolver>:<stable id>`, or `unknown:<realm>:<login>` for a login no resolver knows), so
-- per-user limits (auth_max_fail, auth_max_success) count one person however they were named:
-- by a login in any spelling, through any realm, or by a token serial. Older rows have NULL.
ALTER TABLE auth_audit ADD COLUMN owner TEXT;
CREATE INDEX auth_audit_by_owner ON auth_audit(owner, action, result, at_ms) WHERE owner IS NOT NULL;

-- Throttling of failed checks, per user (source '*') and per user and source (the caller:
-- `ip:ADDR`, `uid:N`, ...): failures since the user's last success and when the last one
-- happened. A check inside the back-off delay is refused unchecked and changes nothing here.
CREATE TABLE auth_throttle (
    owner       TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    failures    INTEGER NOT NULL CHECK (failures >= 0),
    last_ms     INTEGER NOT NULL,
    PRIMARY KEY (owner, source)
) WITHOUT ROWID;
