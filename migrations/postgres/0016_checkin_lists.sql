-- Check-in lists (CHECKIN.md): which tiers a door admits, when, and whether again. Every event
-- has a default list, "Main entrance", admitting every tier (older events by this migration,
-- new ones by a trigger, in the transaction that creates them).
CREATE TABLE checkin_lists (
    id            uuid PRIMARY KEY,
    event_id      uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name          text NOT NULL CONSTRAINT checkin_lists_name_length
                      CHECK (char_length(name) BETWEEN 1 AND 100),
    -- true: every tier of the event, later ones too; false: those in checkin_list_tiers.
    all_tiers     boolean NOT NULL,
    allow_reentry boolean NOT NULL DEFAULT false,
    activates_at  timestamptz,
    expires_at    timestamptz,
    is_default    boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    CONSTRAINT checkin_lists_window CHECK (activates_at < expires_at)
);
CREATE INDEX checkin_lists_event_idx ON checkin_lists (event_id, created_at, id);

-- The tiers a list admits (a deleted tier leaves its lists).
CREATE TABLE checkin_list_tiers (
    list_id  uuid NOT NULL REFERENCES checkin_lists (id) ON DELETE CASCADE,
    tier_id  uuid NOT NULL REFERENCES ticket_tiers (id) ON DELETE CASCADE,
    position integer NOT NULL,
    PRIMARY KEY (list_id, tier_id)
);
CREATE INDEX checkin_list_tiers_tier_idx ON checkin_list_tiers (tier_id);

CREATE FUNCTION events_default_checkin_list() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO checkin_lists (id, event_id, name, all_tiers, is_default, created_at)
    VALUES (gen_random_uuid(), NEW.id, 'Main entrance', true, true, NEW.created_at);
    RETURN NULL;
END $$;
CREATE TRIGGER events_default_checkin_list AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_default_checkin_list();

INSERT INTO checkin_lists (id, event_id, name, all_tiers, is_default, created_at)
SELECT gen_random_uuid(), id, 'Main entrance', true, true, created_at FROM events;
