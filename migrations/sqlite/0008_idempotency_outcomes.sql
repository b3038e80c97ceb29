-- A keyed write records what it did (a domain outcome, as JSON), no longer a rendered HTTP
-- answer, and only when it succeeded: a refused write leaves its key free. Keys answered by an
-- earlier version cannot be replayed in the new form; a retry with one is refused as another
-- request (422) rather than run a second time, until the key is forgotten (24 h).
ALTER TABLE idempotency_keys ADD COLUMN outcome TEXT;
UPDATE idempotency_keys SET request_hash = 'answered before migration 0008'
WHERE response_status IS NOT NULL;
ALTER TABLE idempotency_keys DROP COLUMN response_status;
ALTER TABLE idempotency_keys DROP COLUMN response_body;

-- A claim counts the user's keys of the last 24 h against the quota: by user, not by scanning
-- every recent key of every user.
CREATE INDEX idempotency_keys_user_created_idx ON idempotency_keys (user_id, created_at);
