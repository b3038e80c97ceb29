-- The waiting list (WAITLIST.md): one line per event, in join order (`seq`). An entry waits
-- for `quantity` seats of one tier (or of any tier: `tier_id` NULL) until the offer step gives
-- it an offer: a reserved order (`offer_order_id`, and the order's `waitlist_entry_id`).
-- `tier_id` has no foreign key: a deleted tier closes its entries, which keep its name.
CREATE TABLE waitlist_entries (
    id               uuid PRIMARY KEY,
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    event_id         uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    tier_id          uuid,
    tier_name        text,
    user_id          uuid NOT NULL REFERENCES users (id),
    quantity         integer NOT NULL CHECK (quantity > 0),
    -- The server's offer validity when the entry joined (WAITLIST_OFFER_MINUTES): used when
    -- the event sets none, so that the offer step, which any transaction freeing seats runs,
    -- needs no settings.
    offer_seconds    bigint NOT NULL CHECK (offer_seconds > 0),
    status           text NOT NULL,
    closed_reason    text,
    offer_order_id   uuid UNIQUE REFERENCES orders (id),
    offer_tier_id    uuid,
    offer_tier_name  text,
    offer_quantity   integer,
    offer_total_minor bigint,
    offered_at       timestamptz,
    offer_expires_at timestamptz,
    joined_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
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
ALTER TABLE ticket_tiers ADD COLUMN line_served_at timestamptz;

ALTER TABLE orders ADD COLUMN waitlist_entry_id uuid;

-- The event's waiting entries, kept by the trigger below in the transaction that changes
-- them: the offer step reads it to cost nothing where nobody waits, the sweeper to find lines.
ALTER TABLE events ADD COLUMN waitlist_waiting integer NOT NULL DEFAULT 0
    CONSTRAINT events_waitlist_waiting_nonnegative CHECK (waitlist_waiting >= 0);
CREATE INDEX events_waitlist_idx ON events (id) WHERE waitlist_waiting > 0;

-- Per statement: a bulk close moves each event's counter once. Every writer of entries holds
-- the event's row lock first, so the counter's update never waits on another writer.
CREATE FUNCTION count_waitlist_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE events e SET waitlist_waiting = e.waitlist_waiting + d.delta
        FROM (SELECT event_id, count(*)::integer AS delta FROM new_entries
              WHERE status = 'waiting' GROUP BY event_id) d
        WHERE e.id = d.event_id;
    ELSE
        UPDATE events e SET waitlist_waiting = e.waitlist_waiting + d.delta
        FROM (SELECT n.event_id,
                     sum((n.status = 'waiting')::integer - (o.status = 'waiting')::integer)::integer
                         AS delta
              FROM old_entries o JOIN new_entries n USING (id)
              GROUP BY n.event_id) d
        WHERE e.id = d.event_id AND d.delta <> 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER waitlist_waiting_inserted
    AFTER INSERT ON waitlist_entries REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION count_waitlist_waiting();

CREATE TRIGGER waitlist_waiting_updated
    AFTER UPDATE ON waitlist_entries REFERENCING OLD TABLE AS old_entries NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION count_waitlist_waiting();
