-- NearbyTix schema (PostgreSQL + PostGIS). Constraint names are part of the contract with the
-- store code: it maps violations of them to 4xx answers.
CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    email         text NOT NULL,
    password_hash text NOT NULL,
    latitude      double precision,
    longitude     double precision,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_location_complete CHECK ((latitude IS NULL) = (longitude IS NULL)),
    CONSTRAINT users_latitude_range CHECK (latitude BETWEEN -90 AND 90),
    CONSTRAINT users_longitude_range CHECK (longitude BETWEEN -180 AND 180)
);
-- Emails are stored lower-cased; the index on lower() keeps uniqueness case-insensitive even
-- for rows written by other tools.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE events (
    id            uuid PRIMARY KEY,
    creator_id    uuid NOT NULL REFERENCES users (id),
    title         text NOT NULL,
    description   text,
    start_time    timestamptz NOT NULL,
    end_time      timestamptz NOT NULL,
    total_tickets integer NOT NULL,
    tickets_sold  integer NOT NULL DEFAULT 0,
    latitude      double precision NOT NULL,
    longitude     double precision NOT NULL,
    location      geography(Point, 4326) NOT NULL
                  GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(longitude, latitude), 4326)::geography) STORED,
    venue_name    text NOT NULL,
    address_line1 text NOT NULL,
    address_line2 text,
    city          text NOT NULL,
    state         text NOT NULL,
    country       text NOT NULL,
    postal_code   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_total_tickets_positive CHECK (total_tickets > 0),
    CONSTRAINT events_tickets_sold_range CHECK (tickets_sold >= 0 AND tickets_sold <= total_tickets),
    CONSTRAINT events_time_order CHECK (start_time < end_time),
    CONSTRAINT events_latitude_range CHECK (latitude BETWEEN -90 AND 90),
    CONSTRAINT events_longitude_range CHECK (longitude BETWEEN -180 AND 180)
);
CREATE INDEX events_location_gist ON events USING gist (location);
CREATE INDEX events_start_time_idx ON events (start_time, id);
CREATE INDEX events_creator_idx ON events (creator_id);

CREATE TABLE tickets (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id),
    event_id   uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    status     text NOT NULL,
    expires_at timestamptz NOT NULL,
    paid_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tickets_status_known CHECK (status IN ('reserved', 'paid', 'expired', 'cancelled')),
    CONSTRAINT tickets_paid_has_time CHECK ((status = 'paid') = (paid_at IS NOT NULL))
);
-- The sweeper's work list: only live holds, ordered by deadline.
CREATE INDEX tickets_due_holds_idx ON tickets (expires_at) WHERE status = 'reserved';
-- Reclaiming one event's due holds before answering "sold out", and the delete guard.
CREATE INDEX tickets_event_live_idx ON tickets (event_id, expires_at) WHERE status IN ('reserved', 'paid');
CREATE INDEX tickets_user_created_idx ON tickets (user_id, created_at DESC, id DESC);

CREATE TABLE idempotency_keys (
    user_id         uuid NOT NULL REFERENCES users (id),
    key             text NOT NULL,
    request_hash    text NOT NULL,
    response_status smallint,
    response_body   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
