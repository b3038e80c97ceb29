-- A claimed key names the request that holds it (`claim`) and until when (`lease_until`): the
-- answer is recorded only by the holder, inside the transaction of its work, and a claim whose
-- holder died (its lease passed without an answer) may be taken over by a retry.
ALTER TABLE idempotency_keys
    ADD COLUMN claim uuid,
    ADD COLUMN lease_until timestamptz;
