-- A bound on each user's keys, so that a key written in an order batch settles the user's quota
-- (IDEMPOTENCY_KEYS_PER_USER keys in 24 h) with one row lock instead of counting the user's keys
-- inside the hot event's lock: the count read each of a user's recent keys from the heap, and
-- cost more than writing the key (BENCHMARKS.md, "Keyed orders, third pass"). The row's lock
-- replaces the user's (FOR NO KEY UPDATE, migration 0022) as the one every writer of a key takes
-- first, so the quota stays exact across lanes and processes; the user's row is now locked
-- FOR KEY SHARE, which still keeps it from being deleted until the key is written. Stop every
-- process of an older version before applying this: they write keys without the row.
--
-- `used` is never less than the number of the user's keys created after `since`. An order batch
-- judging the quota at instant T raises `used` by the keys it brings (taken or not) when that
-- keeps it within the quota and `since` is 24 h or more before T: the user's keys of the 24 h
-- before T are then within the quota with the new ones, whatever their exact count. Otherwise
-- (and for a row the batch creates) it counts them, and sets `since` to 25 h before T and `used`
-- to the keys since then plus the ones it brings; a claim made ahead of its write always counts.
-- Keys purged or released leave `used` too high, never too low, until the next count.
--
-- One row per user who ever used a key. Users are deleted only by hand: a row left by one is
-- never read again.
CREATE TABLE idempotency_key_quotas (
    user_id uuid PRIMARY KEY,
    since   timestamptz NOT NULL,
    used    bigint NOT NULL CONSTRAINT idempotency_key_quotas_used_nonnegative CHECK (used >= 0)
) WITH (fillfactor = 50);  -- room on each page for the updates to stay HOT

INSERT INTO idempotency_key_quotas (user_id, since, used)
SELECT user_id, now() - interval '25 hours', count(*)
FROM idempotency_keys
GROUP BY user_id;
