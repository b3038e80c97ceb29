-- Live availability (AVAILABILITY.md): a per-event `availability_version` that goes up with
-- every commit that changes what an availability snapshot shows. SQLite's writers are all in
-- this process: streams learn of a change from the writer itself and from the event change log.
--
-- A tier's `sold` is not watched on its own: the seat ledger moves it only together with its
-- event's `tickets_sold` (takes add and returns subtract, in statements of their own), which
-- bumps the event. Recursive triggers are off (SQLite's default): the bump below does not
-- fire itself.
ALTER TABLE events ADD COLUMN availability_version INTEGER NOT NULL DEFAULT 1
    CONSTRAINT events_availability_version_positive CHECK (availability_version >= 1);
-- The latest clock instant (start, a tier's sales start or end, microseconds) the version was
-- bumped for, so that the sweeper bumps once per instant.
ALTER TABLE events ADD COLUMN availability_clock_at INTEGER NOT NULL DEFAULT -9223372036854775808;

CREATE TRIGGER events_availability_version
    AFTER UPDATE OF total_tickets, tickets_sold, start_time, waitlist_enabled, waitlist_waiting
    ON events
    WHEN OLD.total_tickets IS NOT NEW.total_tickets
      OR OLD.tickets_sold IS NOT NEW.tickets_sold
      OR OLD.start_time IS NOT NEW.start_time
      OR OLD.waitlist_enabled IS NOT NEW.waitlist_enabled
      OR OLD.waitlist_waiting IS NOT NEW.waitlist_waiting
BEGIN
    UPDATE events SET availability_version = availability_version + 1 WHERE id = NEW.id;
END;

CREATE TRIGGER ticket_tiers_availability_added AFTER INSERT ON ticket_tiers
BEGIN
    UPDATE events SET availability_version = availability_version + 1 WHERE id = NEW.event_id;
END;

CREATE TRIGGER ticket_tiers_availability_removed AFTER DELETE ON ticket_tiers
BEGIN
    UPDATE events SET availability_version = availability_version + 1 WHERE id = OLD.event_id;
END;

CREATE TRIGGER ticket_tiers_availability_changed
    AFTER UPDATE OF name, quantity, sales_start, sales_end, position ON ticket_tiers
    WHEN OLD.name IS NOT NEW.name
      OR OLD.quantity IS NOT NEW.quantity
      OR OLD.sales_start IS NOT NEW.sales_start
      OR OLD.sales_end IS NOT NEW.sales_end
      OR OLD.position IS NOT NEW.position
BEGIN
    UPDATE events SET availability_version = availability_version + 1 WHERE id = NEW.event_id;
END;

-- The sweeper looks for instants passed since its last pass among these.
CREATE INDEX ticket_tiers_sales_start_idx ON ticket_tiers (sales_start) WHERE sales_start IS NOT NULL;
CREATE INDEX ticket_tiers_sales_end_idx ON ticket_tiers (sales_end) WHERE sales_end IS NOT NULL;
