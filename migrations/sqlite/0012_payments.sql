-- Every order carries its payment (PAYMENTS.md): the provider that took it, where it stands,
-- the provider's intent, what was given back and why the last attempt failed. Orders paid
-- before this had their money taken by the simulated payment: `succeeded` when not free.
ALTER TABLE orders ADD COLUMN payment_provider TEXT NOT NULL DEFAULT 'none'
    CONSTRAINT orders_payment_provider_known CHECK (payment_provider IN ('none', 'stripe'));
ALTER TABLE orders ADD COLUMN payment_status TEXT NOT NULL DEFAULT 'none'
    CONSTRAINT orders_payment_status_known
    CHECK (payment_status IN ('none', 'pending', 'succeeded', 'failed', 'refunded'));
ALTER TABLE orders ADD COLUMN payment_intent_id TEXT;
ALTER TABLE orders ADD COLUMN refunded_minor INTEGER NOT NULL DEFAULT 0
    CONSTRAINT orders_refunded_range CHECK (refunded_minor >= 0 AND refunded_minor <= total_minor);
ALTER TABLE orders ADD COLUMN payment_failure_code TEXT;
ALTER TABLE orders ADD COLUMN payment_updated_at INTEGER;
UPDATE orders SET payment_status = 'succeeded', payment_updated_at = paid_at
WHERE status = 'paid' AND total_minor > 0;

-- What an event's orders were given back, for its stats (kept by each refund's transaction).
ALTER TABLE events ADD COLUMN refunded_minor INTEGER NOT NULL DEFAULT 0;

-- A refund gives the order's seats back through the seat ledger, under its own cause: SQLite
-- changes a CHECK only by building the table anew.
CREATE TABLE seat_returns_new (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    BLOB NOT NULL,
    -- NULL: the event's own capacity (any tier may use the seats).
    tier_id     BLOB,
    seats       INTEGER NOT NULL CONSTRAINT seat_returns_seats_positive CHECK (seats > 0),
    cause       TEXT NOT NULL CONSTRAINT seat_returns_cause_known CHECK (cause IN
                    ('cancelled', 'expired', 'refunded', 'capacity_raised', 'tier_raised',
                     'tier_added')),
    returned_at INTEGER NOT NULL -- microseconds since 1970-01-01 UTC
);
INSERT INTO seat_returns_new (seq, event_id, tier_id, seats, cause, returned_at)
SELECT seq, event_id, tier_id, seats, cause, returned_at FROM seat_returns;
-- `seq` goes on from where it was, even when the sweeper purged every row: readers resume after
-- the last `seq` they read.
DELETE FROM sqlite_sequence WHERE name = 'seat_returns_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'seat_returns_new', seq FROM sqlite_sequence WHERE name = 'seat_returns';
DROP TABLE seat_returns;
ALTER TABLE seat_returns_new RENAME TO seat_returns;
CREATE INDEX seat_returns_returned_at_idx ON seat_returns (returned_at);
CREATE INDEX seat_returns_event_idx ON seat_returns (event_id);
