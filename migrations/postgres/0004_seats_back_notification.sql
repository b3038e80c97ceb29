-- A sold-out event that gets a seat back (a cancellation, an expiry, more capacity) or moves
-- its start is announced on `nearbytix_seats`, delivered at commit: every server process then
-- stops answering "sold out" for it from memory.
CREATE FUNCTION notify_seats_back() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nearbytix_seats', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_seats_back
    AFTER UPDATE ON events
    FOR EACH ROW
    WHEN (OLD.tickets_sold >= OLD.total_tickets
          AND (NEW.tickets_sold < NEW.total_tickets OR NEW.start_time <> OLD.start_time))
    EXECUTE FUNCTION notify_seats_back();
