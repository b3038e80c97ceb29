-- A process remembers a sale with the event or a tier sold out, rules included, and answers
-- orders it refuses from memory; every write that could change such an answer is announced on
-- `nearbytix_seats` (delivered at commit), so that every process forgets the sale: a seat
-- given back where none was left, a changed capacity, start, cap or tier rule, a tier added or
-- removed, the event deleted. Sales themselves (counters only going up) announce nothing.
CREATE FUNCTION notify_sale_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'events' THEN
        PERFORM pg_notify('nearbytix_seats', OLD.id::text);
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('nearbytix_seats', NEW.event_id::text);
    ELSE
        PERFORM pg_notify('nearbytix_seats', OLD.event_id::text);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER events_seats_back ON events;
DROP FUNCTION notify_seats_back();

CREATE TRIGGER events_sale_changed
    AFTER UPDATE ON events
    FOR EACH ROW
    WHEN ((OLD.tickets_sold >= OLD.total_tickets AND NEW.tickets_sold < OLD.tickets_sold)
          OR NEW.total_tickets <> OLD.total_tickets
          OR NEW.start_time <> OLD.start_time
          OR NEW.max_tickets_per_user IS DISTINCT FROM OLD.max_tickets_per_user)
    EXECUTE FUNCTION notify_sale_changed();

CREATE TRIGGER events_sale_deleted
    AFTER DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION notify_sale_changed();

CREATE TRIGGER ticket_tiers_added_or_removed
    AFTER INSERT OR DELETE ON ticket_tiers
    FOR EACH ROW EXECUTE FUNCTION notify_sale_changed();

CREATE TRIGGER ticket_tiers_sale_changed
    AFTER UPDATE ON ticket_tiers
    FOR EACH ROW
    WHEN ((OLD.quantity IS NOT NULL AND OLD.sold >= OLD.quantity AND NEW.sold < OLD.sold)
          OR NEW.quantity IS DISTINCT FROM OLD.quantity
          OR NEW.max_per_order IS DISTINCT FROM OLD.max_per_order
          OR NEW.sales_start IS DISTINCT FROM OLD.sales_start
          OR NEW.sales_end IS DISTINCT FROM OLD.sales_end
          OR NEW.name <> OLD.name
          OR NEW.position <> OLD.position)
    EXECUTE FUNCTION notify_sale_changed();

-- TRUNCATE fires no row trigger: an empty payload makes every process forget every sale.
CREATE FUNCTION notify_sales_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nearbytix_seats', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_truncated
    AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_sales_truncated();

CREATE TRIGGER ticket_tiers_truncated
    AFTER TRUNCATE ON ticket_tiers
    FOR EACH STATEMENT EXECUTE FUNCTION notify_sales_truncated();
