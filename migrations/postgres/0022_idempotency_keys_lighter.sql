-- A key is written with every keyed order, in the hot event's batch: these two cost a third of
-- a key's write and keep nothing the writers do not already keep.
--
-- The foreign key to users: every writer of a key first locks its user's row (FOR NO KEY
-- UPDATE, for the quota) and writes nothing when the row is gone; the lock then holds off a
-- deletion until commit. A user deleted by hand leaves keys no one can reach, purged after 24 h.
ALTER TABLE idempotency_keys DROP CONSTRAINT IF EXISTS idempotency_keys_user_id_fkey;
-- The index by (user_id, created_at): a user's keys are counted against the quota over the
-- primary key's (user_id, key) range instead, the time filtered on the rows (the quota and the
-- purge keep a user's keys few).
DROP INDEX IF EXISTS idempotency_keys_user_created_idx;
