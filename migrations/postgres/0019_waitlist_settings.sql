-- An event's waiting list, as its creator sets it (WAITLIST.md): off by default; an offer's
-- validity in minutes (NULL: the server's WAITLIST_OFFER_MINUTES).
ALTER TABLE events
    ADD COLUMN waitlist_enabled boolean NOT NULL DEFAULT false,
    ADD COLUMN waitlist_offer_minutes integer
        CONSTRAINT events_waitlist_offer_minutes_range
        CHECK (waitlist_offer_minutes BETWEEN 1 AND 10080);
