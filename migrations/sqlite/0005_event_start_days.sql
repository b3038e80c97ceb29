-- How many events start on each UTC day, kept by triggers in the transaction of every event
-- insert, delete and start-time change, so the exact total of an event listing costs a sum
-- over days and a count within a bound's day, whatever the number of events. `start_time` is
-- in microseconds since the epoch; a day is its floor division by 86 400 000 000.
CREATE TABLE event_start_days (
    day    INTEGER PRIMARY KEY,
    events INTEGER NOT NULL,
    CONSTRAINT event_start_days_events_range CHECK (events >= 0)
);

INSERT INTO event_start_days (day, events)
SELECT (start_time - ((start_time % 86400000000) + 86400000000) % 86400000000) / 86400000000,
       count(*)
FROM events GROUP BY 1;

CREATE TRIGGER events_start_days_insert AFTER INSERT ON events
BEGIN
    INSERT INTO event_start_days (day, events)
    VALUES ((NEW.start_time - ((NEW.start_time % 86400000000) + 86400000000) % 86400000000)
                / 86400000000, 1)
    ON CONFLICT (day) DO UPDATE SET events = events + 1;
END;

CREATE TRIGGER events_start_days_delete AFTER DELETE ON events
BEGIN
    UPDATE event_start_days SET events = events - 1
    WHERE day = (OLD.start_time - ((OLD.start_time % 86400000000) + 86400000000) % 86400000000)
                / 86400000000;
END;

CREATE TRIGGER events_start_days_moved AFTER UPDATE OF start_time ON events
WHEN OLD.start_time <> NEW.start_time
BEGIN
    UPDATE event_start_days SET events = events - 1
    WHERE day = (OLD.start_time - ((OLD.start_time % 86400000000) + 86400000000) % 86400000000)
                / 86400000000;
    INSERT INTO event_start_days (day, events)
    VALUES ((NEW.start_time - ((NEW.start_time % 86400000000) + 86400000000) % 86400000000)
                / 86400000000, 1)
    ON CONFLICT (day) DO UPDATE SET events = events + 1;
END;
