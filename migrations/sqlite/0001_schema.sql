-- NearbyTix schema (SQLite). Timestamps are INTEGER microseconds since the Unix epoch (UTC), so
-- comparisons are numeric and exact; UUIDs are 16-byte BLOBs. Constraint names match the
-- PostgreSQL schema: the store code maps violations of them to 4xx answers.

CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    latitude      REAL,
    longitude     REAL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CONSTRAINT users_location_complete CHECK ((latitude IS NULL) = (longitude IS NULL)),
    CONSTRAINT users_latitude_range CHECK (latitude BETWEEN -90 AND 90),
    CONSTRAINT users_longitude_range CHECK (longitude BETWEEN -180 AND 180)
);
CREATE UNIQUE INDEX users_email_key ON users (email COLLATE NOCASE);

CREATE TABLE events (
    -- An explicit INTEGER PRIMARY KEY keeps the rowid stable across VACUUM: the R*Tree refers to it.
    seq           INTEGER PRIMARY KEY,
    id            BLOB NOT NULL UNIQUE,
    creator_id    BLOB NOT NULL REFERENCES users (id),
    title         TEXT NOT NULL,
    description   TEXT,
    start_time    INTEGER NOT NULL,
    end_time      INTEGER NOT NULL,
    total_tickets INTEGER NOT NULL,
    tickets_sold  INTEGER NOT NULL DEFAULT 0,
    latitude      REAL NOT NULL,
    longitude     REAL NOT NULL,
    venue_name    TEXT NOT NULL,
    address_line1 TEXT NOT NULL,
    address_line2 TEXT,
    city          TEXT NOT NULL,
    state         TEXT NOT NULL,
    country       TEXT NOT NULL,
    postal_code   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CONSTRAINT events_total_tickets_positive CHECK (total_tickets > 0),
    CONSTRAINT events_tickets_sold_range CHECK (tickets_sold >= 0 AND tickets_sold <= total_tickets),
    CONSTRAINT events_time_order CHECK (start_time < end_time),
    CONSTRAINT events_latitude_range CHECK (latitude BETWEEN -90 AND 90),
    CONSTRAINT events_longitude_range CHECK (longitude BETWEEN -180 AND 180)
);
CREATE INDEX events_start_time_idx ON events (start_time, id);
CREATE INDEX events_creator_idx ON events (creator_id);

-- Bounding-box index for the nearby search; the exact distance is computed in Rust. The
-- auxiliary columns (+) carry everything the search filters and sorts on, so a search never
-- visits the events table for its candidates; `on_sale` flips only when an event sells out
-- or gets seats back, not on every reservation.
CREATE VIRTUAL TABLE events_rtree USING rtree (
    seq, min_lat, max_lat, min_lon, max_lon,
    +latitude, +longitude, +start_time, +on_sale, +id
);

CREATE TRIGGER events_rtree_insert AFTER INSERT ON events BEGIN
    INSERT INTO events_rtree (seq, min_lat, max_lat, min_lon, max_lon,
                              latitude, longitude, start_time, on_sale, id)
    VALUES (new.seq, new.latitude, new.latitude, new.longitude, new.longitude,
            new.latitude, new.longitude, new.start_time,
            new.tickets_sold < new.total_tickets, new.id);
END;

CREATE TRIGGER events_rtree_update AFTER UPDATE OF latitude, longitude, start_time, total_tickets ON events BEGIN
    UPDATE events_rtree
    SET min_lat = new.latitude, max_lat = new.latitude, min_lon = new.longitude, max_lon = new.longitude,
        latitude = new.latitude, longitude = new.longitude, start_time = new.start_time,
        on_sale = new.tickets_sold < new.total_tickets
    WHERE seq = new.seq;
END;

CREATE TRIGGER events_rtree_sold_out AFTER UPDATE OF tickets_sold ON events
WHEN (old.tickets_sold < old.total_tickets) != (new.tickets_sold < new.total_tickets) BEGIN
    UPDATE events_rtree SET on_sale = new.tickets_sold < new.total_tickets WHERE seq = new.seq;
END;

CREATE TRIGGER events_rtree_delete AFTER DELETE ON events BEGIN
    DELETE FROM events_rtree WHERE seq = old.seq;
END;

CREATE TABLE tickets (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB NOT NULL REFERENCES users (id),
    event_id   BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    status     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    paid_at    INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT tickets_status_known CHECK (status IN ('reserved', 'paid', 'expired', 'cancelled')),
    CONSTRAINT tickets_paid_has_time CHECK ((status = 'paid') = (paid_at IS NOT NULL))
);
CREATE INDEX tickets_due_holds_idx ON tickets (expires_at) WHERE status = 'reserved';
CREATE INDEX tickets_event_live_idx ON tickets (event_id, expires_at) WHERE status IN ('reserved', 'paid');
CREATE INDEX tickets_user_created_idx ON tickets (user_id, created_at DESC, id DESC);

CREATE TABLE idempotency_keys (
    user_id         BLOB NOT NULL REFERENCES users (id),
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    response_status INTEGER,
    response_body   TEXT,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
