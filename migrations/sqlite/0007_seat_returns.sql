-- The seat ledger's record: every time seats come back on sale (a cancellation, an expiry, a
-- raised capacity or tier quantity, a tier added) one row per event and tier, written by the
-- ledger in the transaction that frees them (`store/ledger.rs`). It is what the waiting list's
-- offer step and the availability stream follow. Rows are kept for an hour (purged by the
-- sweeper with the event change log); `seq` grows in commit order (one writer).
CREATE TABLE seat_returns (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    BLOB NOT NULL,
    -- NULL: the event's own capacity (any tier may use the seats).
    tier_id     BLOB,
    seats       INTEGER NOT NULL CONSTRAINT seat_returns_seats_positive CHECK (seats > 0),
    cause       TEXT NOT NULL CONSTRAINT seat_returns_cause_known CHECK (cause IN
                    ('cancelled', 'expired', 'capacity_raised', 'tier_raised', 'tier_added')),
    returned_at INTEGER NOT NULL -- microseconds since 1970-01-01 UTC
);
CREATE INDEX seat_returns_returned_at_idx ON seat_returns (returned_at);
CREATE INDEX seat_returns_event_idx ON seat_returns (event_id);
