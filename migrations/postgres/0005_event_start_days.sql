-- How many events start on each UTC day, kept by triggers in the transaction of every event
-- insert, delete and start-time change, so the exact total of an event listing costs a sum
-- over days and a count within a bound's day, whatever the number of events.
CREATE TABLE event_start_days (
    day    bigint PRIMARY KEY, -- whole days since 1970-01-01 UTC of start_time
    events bigint NOT NULL,
    CONSTRAINT event_start_days_events_range CHECK (events >= 0)
);

INSERT INTO event_start_days (day, events)
SELECT floor(extract(epoch FROM start_time) / 86400)::bigint, count(*) FROM events GROUP BY 1;

-- Inserts and deletes are counted per statement: a bulk insert updates each day once (a row
-- trigger would update one day row thousands of times in one transaction, each update
-- walking the versions the earlier ones left).
CREATE FUNCTION count_event_start_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO event_start_days (day, events)
        SELECT floor(extract(epoch FROM start_time) / 86400)::bigint, count(*)
        FROM new_events GROUP BY 1
        ON CONFLICT (day) DO UPDATE SET events = event_start_days.events + EXCLUDED.events;
    ELSE
        UPDATE event_start_days d SET events = d.events - gone.events
        FROM (SELECT floor(extract(epoch FROM start_time) / 86400)::bigint AS day,
                     count(*) AS events
              FROM old_events GROUP BY 1) gone
        WHERE d.day = gone.day;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_start_days_inserted
    AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION count_event_start_days();

CREATE TRIGGER events_start_days_deleted
    AFTER DELETE ON events REFERENCING OLD TABLE AS old_events
    FOR EACH STATEMENT EXECUTE FUNCTION count_event_start_days();

-- A start moves one event at a time; a row trigger limited to `start_time` leaves the hot
-- updates of `tickets_sold` alone. Both day rows are locked in day order, so two events moving
-- between the same days in opposite directions cannot deadlock.
CREATE FUNCTION move_event_start_day() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_day bigint := floor(extract(epoch FROM OLD.start_time) / 86400)::bigint;
    new_day bigint := floor(extract(epoch FROM NEW.start_time) / 86400)::bigint;
BEGIN
    INSERT INTO event_start_days (day, events) VALUES (new_day, 0)
    ON CONFLICT (day) DO NOTHING;
    PERFORM 1 FROM event_start_days WHERE day IN (old_day, new_day) ORDER BY day FOR UPDATE;
    UPDATE event_start_days SET events = events - 1 WHERE day = old_day;
    UPDATE event_start_days SET events = events + 1 WHERE day = new_day;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_start_days_moved
    AFTER UPDATE OF start_time ON events
    FOR EACH ROW WHEN (OLD.start_time IS DISTINCT FROM NEW.start_time)
    EXECUTE FUNCTION move_event_start_day();
