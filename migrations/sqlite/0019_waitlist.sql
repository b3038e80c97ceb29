-- The waiting list (WAITLIST.md): one line per event, in join order (`seq`, the rowid). An
-- entry waits for `quantity` seats of one tier (or of any tier: `tier_id` NULL) until the offer
-- step gives it an offer: a reserved order (`offer_order_id`, and the order's
-- `waitlist_entry_id`). `tier_id` has no foreign key: a deleted tier closes its entries, which
-- keep its name.
CREATE TABLE waitlist_entries (
    seq               INTEGER PRIMARY KEY,
    id                BLOB NOT NULL UNIQUE,
    event_id          BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    tier_id           BLOB,
    tier_name         TEXT,
    user_id           BLOB NOT NULL REFERENCES users (id),
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    -- The server's offer validity when the entry joined (WAITLIST_OFFER_MINUTES): used when
    -- the event sets none, so that the offer step, which any transaction freeing seats runs,
    -- needs no settings.
    offer_seconds     INTEGER NOT NULL CHECK (offer_seconds > 0),
    status            TEXT NOT NULL,
    closed_reason     TEXT,
    offer_order_id    BLOB UNIQUE REFERENCES orders (id),
    offer_tier_id     BLOB,
    offer_tier_name   TEXT,
    offer_quantity    INTEGER,
    offer_total_minor INTEGER,
    offered_at        INTEGER,
    offer_expires_at  INTEGER,
    joined_at         INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    CONSTRAINT waitlist_status_known CHECK (status IN
        ('waiting', 'offered', 'purchased', 'expired', 'left', 'removed', 'closed')),
    CONSTRAINT waitlist_closed_has_reason CHECK ((status = 'closed') = (closed_reason IS NOT NULL)),
    CONSTRAINT waitlist_reason_known CHECK (closed_reason IN
        ('event_started', 'tier_unavailable', 'waitlist_disabled', 'limit')),
    CONSTRAINT waitlist_offered_has_offer CHECK (status <> 'offered' OR offer_order_id IS NOT NULL),
    CONSTRAINT waitlist_tier_named CHECK ((tier_id IS NULL) = (tier_name IS NULL))
);
-- One active entry per user and event.
CREATE UNIQUE INDEX waitlist_one_active_idx ON waitlist_entries (event_id, user_id)
    WHERE status IN ('waiting', 'offered');
-- The line: an event's waiting entries in join order.
CREATE INDEX waitlist_line_idx ON waitlist_entries (event_id, seq) WHERE status = 'waiting';
-- Offers to end when their orders expire; a deleted or ended tier's line.
CREATE INDEX waitlist_offers_due_idx ON waitlist_entries (offer_expires_at) WHERE status = 'offered';
CREATE INDEX waitlist_tier_idx ON waitlist_entries (tier_id) WHERE status = 'waiting';
CREATE INDEX waitlist_user_idx ON waitlist_entries (user_id, joined_at DESC, id DESC);
CREATE INDEX waitlist_event_idx ON waitlist_entries (event_id, seq);
CREATE INDEX waitlist_active_user_idx ON waitlist_entries (user_id)
    WHERE status IN ('waiting', 'offered');

-- When the sweeper last served the line for the tier's `sales_start` (the clock, not a
-- write, put its seats on sale).
ALTER TABLE ticket_tiers ADD COLUMN line_served_at INTEGER;

ALTER TABLE orders ADD COLUMN waitlist_entry_id BLOB;

-- The event's waiting entries, kept by the triggers below in the transaction that changes
-- them: the offer step reads it to cost nothing where nobody waits, the sweeper to find lines.
ALTER TABLE events ADD COLUMN waitlist_waiting INTEGER NOT NULL DEFAULT 0
    CONSTRAINT events_waitlist_waiting_nonnegative CHECK (waitlist_waiting >= 0);
CREATE INDEX events_waitlist_idx ON events (id) WHERE waitlist_waiting > 0;

CREATE TRIGGER waitlist_waiting_inserted AFTER INSERT ON waitlist_entries
    WHEN NEW.status = 'waiting'
BEGIN
    UPDATE events SET waitlist_waiting = waitlist_waiting + 1 WHERE id = NEW.event_id;
END;

CREATE TRIGGER waitlist_waiting_updated AFTER UPDATE OF status ON waitlist_entries
    WHEN (OLD.status = 'waiting') <> (NEW.status = 'waiting')
BEGIN
    UPDATE events
    SET waitlist_waiting = waitlist_waiting + CASE WHEN NEW.status = 'waiting' THEN 1 ELSE -1 END
    WHERE id = NEW.event_id;
END;
