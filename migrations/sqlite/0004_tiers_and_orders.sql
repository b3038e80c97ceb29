-- Ticket tiers and orders (see the PostgreSQL migration of the same name): an event sells its
-- seats through tiers, a purchase is an order of one or more tickets sharing its status.
-- Orders, their items and tickets all carry `event_id`.

ALTER TABLE events ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD'
    CONSTRAINT events_currency_code CHECK (length(currency) = 3 AND currency GLOB '[A-Z][A-Z][A-Z]');
ALTER TABLE events ADD COLUMN max_tickets_per_user INTEGER
    CONSTRAINT events_max_per_user_range CHECK (max_tickets_per_user BETWEEN 1 AND 100);

CREATE TABLE ticket_tiers (
    id            BLOB PRIMARY KEY NOT NULL,
    event_id      BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    description   TEXT,
    price_minor   INTEGER NOT NULL DEFAULT 0,
    quantity      INTEGER,
    sold          INTEGER NOT NULL DEFAULT 0,
    max_per_order INTEGER,
    sales_start   INTEGER,
    sales_end     INTEGER,
    position      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CONSTRAINT ticket_tiers_name_unique UNIQUE (event_id, name),
    CONSTRAINT ticket_tiers_price_range CHECK (price_minor BETWEEN 0 AND 1000000000),
    CONSTRAINT ticket_tiers_quantity_positive CHECK (quantity >= 1),
    CONSTRAINT ticket_tiers_sold_range CHECK (sold >= 0 AND (quantity IS NULL OR sold <= quantity)),
    CONSTRAINT ticket_tiers_max_per_order_range CHECK (max_per_order BETWEEN 1 AND 100),
    CONSTRAINT ticket_tiers_sales_window CHECK (sales_start < sales_end)
);
CREATE INDEX ticket_tiers_event_idx ON ticket_tiers (event_id, position);

CREATE TABLE orders (
    id          BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id),
    event_id    BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    currency    TEXT NOT NULL,
    total_minor INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    paid_at     INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT orders_status_known CHECK (status IN ('reserved', 'paid', 'expired', 'cancelled')),
    CONSTRAINT orders_paid_has_time CHECK ((status = 'paid') = (paid_at IS NOT NULL))
);
CREATE INDEX orders_due_holds_idx ON orders (expires_at) WHERE status = 'reserved';
CREATE INDEX orders_event_live_idx ON orders (event_id, expires_at) WHERE status IN ('reserved', 'paid');
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at DESC, id DESC);

CREATE TABLE order_items (
    order_id         BLOB NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    event_id         BLOB NOT NULL,
    tier_id          BLOB NOT NULL,
    tier_name        TEXT NOT NULL,
    quantity         INTEGER NOT NULL,
    unit_price_minor INTEGER NOT NULL,
    -- The item's place in the order as it was sent.
    line             INTEGER NOT NULL,
    PRIMARY KEY (order_id, tier_id),
    CONSTRAINT order_items_quantity_positive CHECK (quantity >= 1)
);

-- Existing data: every event gets its "General admission" tier holding all its live tickets
-- (a random version-4 id), every ticket an order of one (the order keeps the ticket's id).
INSERT INTO ticket_tiers (id, event_id, name, sold, position, created_at, updated_at)
SELECT unhex(substr(r, 1, 12) || '4' || substr(r, 14, 3)
             || substr('89AB', 1 + (abs(random()) % 4), 1) || substr(r, 18, 15)),
       id, 'General admission', tickets_sold, 0, created_at, updated_at
FROM (SELECT hex(randomblob(16)) AS r, * FROM events);

INSERT INTO orders (id, user_id, event_id, status, currency, total_minor, expires_at, paid_at,
                    created_at, updated_at)
SELECT t.id, t.user_id, t.event_id, t.status, e.currency, 0, t.expires_at, t.paid_at,
       t.created_at, t.updated_at
FROM tickets t JOIN events e ON e.id = t.event_id;

INSERT INTO order_items (order_id, event_id, tier_id, tier_name, quantity, unit_price_minor, line)
SELECT t.id, t.event_id, tier.id, tier.name, 1, 0, 0
FROM tickets t JOIN ticket_tiers tier ON tier.event_id = t.event_id;

-- SQLite cannot make a column NOT NULL in place: the tickets table is rebuilt.
CREATE TABLE tickets_with_orders (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id),
    event_id   BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    order_id   BLOB NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    tier_id    BLOB NOT NULL,
    status     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    paid_at    INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT tickets_status_known CHECK (status IN ('reserved', 'paid', 'expired', 'cancelled')),
    CONSTRAINT tickets_paid_has_time CHECK ((status = 'paid') = (paid_at IS NOT NULL))
);
INSERT INTO tickets_with_orders (id, user_id, event_id, order_id, tier_id, status, expires_at,
                                 paid_at, created_at, updated_at)
SELECT t.id, t.user_id, t.event_id, t.id, tier.id, t.status, t.expires_at, t.paid_at,
       t.created_at, t.updated_at
FROM tickets t JOIN ticket_tiers tier ON tier.event_id = t.event_id;
DROP TABLE tickets;
ALTER TABLE tickets_with_orders RENAME TO tickets;
CREATE INDEX tickets_user_created_idx ON tickets (user_id, created_at DESC, id DESC);
CREATE INDEX tickets_order_idx ON tickets (order_id);
-- A tier's sales and an event's cascading delete find the event's tickets.
CREATE INDEX tickets_event_idx ON tickets (event_id);
CREATE INDEX tickets_user_event_live_idx ON tickets (user_id, event_id)
    WHERE status IN ('reserved', 'paid');
