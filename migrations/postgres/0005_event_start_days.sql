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

CREATE FUNCTION count_event_start_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE event_start_days SET events = events - 1
        WHERE day = floor(extract(epoch FROM OLD.start_time) / 86400)::bigint;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO event_start_days (day, events)
        VALUES (floor(extract(epoch FROM NEW.start_time) / 86400)::bigint, 1)
        ON CONFLICT (day) DO UPDATE SET events = event_start_days.events + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_start_days_kept
    AFTER INSERT OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION count_event_start_days();

CREATE TRIGGER events_start_days_moved
    AFTER UPDATE OF start_time ON events
    FOR EACH ROW WHEN (OLD.start_time IS DISTINCT FROM NEW.start_time)
    EXECUTE FUNCTION count_event_start_days();
