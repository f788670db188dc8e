-- Policies as privacyIDEA admins know them: a named set of actions in one scope, applied when
-- every condition matches, the lowest priority number winning. Lists are JSON arrays of text;
-- an empty list means "any". Values are checked against the action catalogue before they are
-- stored (appliance/src/policy/actions.rs); this table only holds them.

CREATE TABLE policy (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    scope         TEXT    NOT NULL CHECK (scope IN ('authentication', 'authorization', 'enrollment', 'admin')),
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    priority      INTEGER NOT NULL DEFAULT 1 CHECK (priority >= 1),   -- lower number wins
    actions       TEXT    NOT NULL,          -- JSON object: action name -> true/false, integer or text
    realms        TEXT    NOT NULL DEFAULT '[]',   -- JSON list; [] = any realm
    resolvers     TEXT    NOT NULL DEFAULT '[]',   -- JSON list; [] = any resolver
    users         TEXT    NOT NULL DEFAULT '[]',   -- JSON list of logins, '!login' excludes; [] = any user
    clients       TEXT    NOT NULL DEFAULT '[]',   -- JSON list of CIDRs or addresses, '!' excludes; [] = any client
    time          TEXT    NOT NULL DEFAULT '',     -- weekday/time ranges, e.g. 'Mon-Fri: 08:00-18:00'; '' = always
    admin_realms  TEXT    NOT NULL DEFAULT '[]',   -- admin scope: realms of the administrator; [] = any
    admin_users   TEXT    NOT NULL DEFAULT '[]',   -- admin scope: administrators; [] = any
    description   TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,          -- unix seconds
    updated_at    INTEGER NOT NULL
);
