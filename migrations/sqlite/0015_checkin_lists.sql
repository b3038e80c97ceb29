-- Check-in lists (CHECKIN.md): which tiers a door admits, when, and whether again. Every event
-- has a default list, "Main entrance", admitting every tier (older events by this migration,
-- new ones by a trigger, in the transaction that creates them). Ids made here are 16 random
-- bytes, read as any other id.
CREATE TABLE checkin_lists (
    id            BLOB PRIMARY KEY,
    event_id      BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name          TEXT NOT NULL CONSTRAINT checkin_lists_name_length
                      CHECK (length(name) BETWEEN 1 AND 100),
    -- 1: every tier of the event, later ones too; 0: those in checkin_list_tiers.
    all_tiers     INTEGER NOT NULL,
    allow_reentry INTEGER NOT NULL DEFAULT 0,
    activates_at  INTEGER,
    expires_at    INTEGER,
    is_default    INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    CONSTRAINT checkin_lists_window CHECK (activates_at < expires_at)
);
CREATE INDEX checkin_lists_event_idx ON checkin_lists (event_id, created_at, id);

-- The tiers a list admits (a deleted tier leaves its lists).
CREATE TABLE checkin_list_tiers (
    list_id  BLOB NOT NULL REFERENCES checkin_lists (id) ON DELETE CASCADE,
    tier_id  BLOB NOT NULL REFERENCES ticket_tiers (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    PRIMARY KEY (list_id, tier_id)
);
CREATE INDEX checkin_list_tiers_tier_idx ON checkin_list_tiers (tier_id);

CREATE TRIGGER events_default_checkin_list AFTER INSERT ON events
BEGIN
    INSERT INTO checkin_lists (id, event_id, name, all_tiers, is_default, created_at)
    VALUES (randomblob(16), NEW.id, 'Main entrance', 1, 1, NEW.created_at);
END;

INSERT INTO checkin_lists (id, event_id, name, all_tiers, is_default, created_at)
SELECT randomblob(16), id, 'Main entrance', 1, 1, created_at FROM events;
