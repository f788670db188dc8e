-- The console's audit search and `countersign audit auth --since/--until` select a time range
-- in the store (they used to filter the newest 5,000 rows in memory, so an older range found
-- nothing). Without an index on the time, a range reads every row. Indexes are no table
-- content: neither the audit chain nor any seal covers them.
CREATE INDEX auth_audit_by_time ON auth_audit(at_ms);
