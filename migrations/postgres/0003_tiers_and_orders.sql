-- Ticket tiers and orders. An event sells its seats through tiers (shared capacity:
-- `events.tickets_sold` counts every live ticket, `ticket_tiers.sold` those of the tier); a
-- purchase is an order of one or more tickets that share its status. Orders, their items and
-- tickets all carry `event_id`, the key they would be distributed by.
-- Counters change only under the event row's lock: every writer locks the event first.

ALTER TABLE events
    ADD COLUMN currency text NOT NULL DEFAULT 'USD',
    ADD COLUMN max_tickets_per_user integer,
    ADD CONSTRAINT events_currency_code CHECK (currency ~ '^[A-Z]{3}$'),
    ADD CONSTRAINT events_max_per_user_range CHECK (max_tickets_per_user BETWEEN 1 AND 100);

CREATE TABLE ticket_tiers (
    id            uuid PRIMARY KEY,
    event_id      uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name          text NOT NULL,
    description   text,
    price_minor   bigint NOT NULL DEFAULT 0,
    quantity      integer,
    sold          integer NOT NULL DEFAULT 0,
    max_per_order integer,
    sales_start   timestamptz,
    sales_end     timestamptz,
    position      integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ticket_tiers_name_unique UNIQUE (event_id, name),
    CONSTRAINT ticket_tiers_price_range CHECK (price_minor BETWEEN 0 AND 1000000000),
    CONSTRAINT ticket_tiers_quantity_positive CHECK (quantity >= 1),
    CONSTRAINT ticket_tiers_sold_range CHECK (sold >= 0 AND (quantity IS NULL OR sold <= quantity)),
    CONSTRAINT ticket_tiers_max_per_order_range CHECK (max_per_order BETWEEN 1 AND 100),
    CONSTRAINT ticket_tiers_sales_window CHECK (sales_start < sales_end)
);
CREATE INDEX ticket_tiers_event_idx ON ticket_tiers (event_id, position);

CREATE TABLE orders (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    event_id    uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    status      text NOT NULL,
    currency    text NOT NULL,
    total_minor bigint NOT NULL,
    expires_at  timestamptz NOT NULL,
    paid_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_status_known CHECK (status IN ('reserved', 'paid', 'expired', 'cancelled')),
    CONSTRAINT orders_paid_has_time CHECK ((status = 'paid') = (paid_at IS NOT NULL))
);
CREATE INDEX orders_due_holds_idx ON orders (expires_at) WHERE status = 'reserved';
CREATE INDEX orders_event_live_idx ON orders (event_id, expires_at) WHERE status IN ('reserved', 'paid');
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at DESC, id DESC);

-- What was bought at which price: a snapshot, so that a later price change or a deleted tier
-- leaves the order as it was (hence no foreign key to the tier).
CREATE TABLE order_items (
    order_id         uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    event_id         uuid NOT NULL,
    tier_id          uuid NOT NULL,
    tier_name        text NOT NULL,
    quantity         integer NOT NULL,
    unit_price_minor bigint NOT NULL,
    -- The item's place in the order as it was sent.
    line             integer NOT NULL,
    PRIMARY KEY (order_id, tier_id),
    CONSTRAINT order_items_quantity_positive CHECK (quantity >= 1)
);

ALTER TABLE tickets
    ADD COLUMN order_id uuid REFERENCES orders (id) ON DELETE CASCADE,
    ADD COLUMN tier_id uuid;

-- Existing data: every event gets its "General admission" tier holding all its live tickets,
-- every ticket an order of one (the order keeps the ticket's id) at price 0.
INSERT INTO ticket_tiers (id, event_id, name, sold, position, created_at, updated_at)
SELECT gen_random_uuid(), id, 'General admission', tickets_sold, 0, created_at, updated_at
FROM events;

INSERT INTO orders (id, user_id, event_id, status, currency, total_minor, expires_at, paid_at,
                    created_at, updated_at)
SELECT t.id, t.user_id, t.event_id, t.status, e.currency, 0, t.expires_at, t.paid_at,
       t.created_at, t.updated_at
FROM tickets t JOIN events e ON e.id = t.event_id;

INSERT INTO order_items (order_id, event_id, tier_id, tier_name, quantity, unit_price_minor, line)
SELECT t.id, t.event_id, tier.id, tier.name, 1, 0, 0
FROM tickets t JOIN ticket_tiers tier ON tier.event_id = t.event_id;

UPDATE tickets t SET order_id = t.id, tier_id = tier.id
FROM ticket_tiers tier WHERE tier.event_id = t.event_id;

ALTER TABLE tickets ALTER COLUMN order_id SET NOT NULL, ALTER COLUMN tier_id SET NOT NULL;
CREATE INDEX tickets_order_idx ON tickets (order_id);
-- A tier's sales and an event's cascading delete find the event's tickets.
CREATE INDEX tickets_event_idx ON tickets (event_id);
-- The per-person cap counts a user's live tickets of one event.
CREATE INDEX tickets_user_event_live_idx ON tickets (user_id, event_id)
    WHERE status IN ('reserved', 'paid');
-- Holds are swept and reclaimed by order now.
DROP INDEX tickets_due_holds_idx;
DROP INDEX tickets_event_live_idx;
