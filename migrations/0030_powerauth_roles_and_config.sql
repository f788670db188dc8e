-- PowerAuth application roles and configuration (issue 19): the reference's application roles
-- (answered with every signature verification, for the back-end to authorise by) and
-- `pa_application_config` (key/values the reference reads for FIDO2 and OAuth activations).
-- Both grant power, so both are sealed tables.
CREATE TABLE powerauth_application_role (
    application_id  INTEGER NOT NULL REFERENCES powerauth_application(application_id) ON DELETE RESTRICT,
    role            TEXT    NOT NULL,
    PRIMARY KEY (application_id, role)
);

CREATE TABLE powerauth_application_config (
    application_id  INTEGER NOT NULL REFERENCES powerauth_application(application_id) ON DELETE RESTRICT,
    config_key      TEXT    NOT NULL,
    config_values   TEXT    NOT NULL,   -- a JSON array, as the reference serialises it
    PRIMARY KEY (application_id, config_key)
);
