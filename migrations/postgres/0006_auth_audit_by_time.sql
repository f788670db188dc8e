-- The audit's time-range search: see migrations/0027_auth_audit_by_time.sql (SQLite), of which
-- this is the same index.
CREATE INDEX auth_audit_by_time ON auth_audit(at_ms);
