-- auth_max_fail, auth_max_success and the /auth login limit count one user's recent rows of one
-- action and result. Indexed by login and time only (0012), that count read every row of the
-- user in the window: thousands per check for a busy user. Indexed by login, action, result
-- and time, it reads only the rows it counts.
DROP INDEX auth_audit_by_login;
CREATE INDEX auth_audit_by_login_action ON auth_audit(login, action, result, at_ms);
