-- A ticket's code serial (CHECKIN.md): 1 at first; a reissue adds 1 and revokes the lower ones.
-- Reissues are logged for their per-day limit (purged after 24 h with the idempotency keys).
ALTER TABLE tickets ADD COLUMN code_serial INTEGER NOT NULL DEFAULT 1
    CONSTRAINT tickets_code_serial_positive CHECK (code_serial >= 1);
CREATE TABLE ticket_code_reissues (
    ticket_id   BLOB NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    reissued_at INTEGER NOT NULL -- microseconds since 1970-01-01 UTC
);
CREATE INDEX ticket_code_reissues_ticket_idx ON ticket_code_reissues (ticket_id, reissued_at);
CREATE INDEX ticket_code_reissues_at_idx ON ticket_code_reissues (reissued_at);
