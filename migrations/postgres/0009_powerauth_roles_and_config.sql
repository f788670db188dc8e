-- PowerAuth application roles and configuration: see
-- migrations/0030_powerauth_roles_and_config.sql (SQLite), of which these are the same tables.
CREATE TABLE powerauth_application_role (
    application_id  BIGINT NOT NULL REFERENCES powerauth_application(application_id) ON DELETE RESTRICT,
    role            TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (application_id, role)
);

CREATE TABLE powerauth_application_config (
    application_id  BIGINT NOT NULL REFERENCES powerauth_application(application_id) ON DELETE RESTRICT,
    config_key      TEXT COLLATE "C" NOT NULL,
    config_values   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (application_id, config_key)
);
