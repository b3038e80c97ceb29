-- An event's waiting list, as its creator sets it (WAITLIST.md): off by default; an offer's
-- validity in minutes (NULL: the server's WAITLIST_OFFER_MINUTES).
ALTER TABLE events ADD COLUMN waitlist_enabled INTEGER NOT NULL DEFAULT 0
    CHECK (waitlist_enabled IN (0, 1));
ALTER TABLE events ADD COLUMN waitlist_offer_minutes INTEGER
    CONSTRAINT events_waitlist_offer_minutes_range
    CHECK (waitlist_offer_minutes BETWEEN 1 AND 10080);
