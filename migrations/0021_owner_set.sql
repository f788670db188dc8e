-- The sealed set of users (issue 13, finding 10): each user row is placed in one of 4,096
-- buckets by a hash of its identity (realm and login, or resolver and stable id), and each
-- bucket is sealed in table_seal ('owners/<n>'), so a user row deleted with all its tokens
-- behind the appliance's back is noticed when that user is next checked. Filled at the first
-- start that seals the buckets.
ALTER TABLE app_user ADD COLUMN owner_bucket INTEGER;
CREATE INDEX app_user_by_bucket ON app_user(owner_bucket);
