-- auth_max_fail / auth_max_success count a user's recent checks: an index by login and time
-- keeps that count from scanning the whole audit.
CREATE INDEX auth_audit_by_login ON auth_audit(login, at_ms);
