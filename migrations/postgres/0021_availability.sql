-- Live availability (AVAILABILITY.md): a per-event `availability_version` that goes up with
-- every commit that changes what an availability snapshot shows, and is announced on
-- `nearbytix_availability` (payload: the event's id; PostgreSQL delivers one per event per
-- transaction, at commit) so that every process's streams re-read the event at once.
--
-- A tier's `sold` is not watched on its own: the seat ledger moves it only together with its
-- event's `tickets_sold` (takes add and returns subtract, in statements of their own), which
-- bumps the event.
ALTER TABLE events
    ADD COLUMN availability_version bigint NOT NULL DEFAULT 1
        CONSTRAINT events_availability_version_positive CHECK (availability_version >= 1),
    -- The latest clock instant (start, a tier's sales start or end) the version was bumped for:
    -- the sweeper of whichever process passes it first bumps once, the others find it done.
    ADD COLUMN availability_clock_at timestamptz NOT NULL DEFAULT '-infinity';

CREATE FUNCTION bump_availability_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.total_tickets, NEW.tickets_sold, NEW.start_time, NEW.waitlist_enabled,
        NEW.waitlist_waiting)
       IS DISTINCT FROM
       (OLD.total_tickets, OLD.tickets_sold, OLD.start_time, OLD.waitlist_enabled,
        OLD.waitlist_waiting)
    THEN
        NEW.availability_version := greatest(NEW.availability_version, OLD.availability_version + 1);
    END IF;
    IF NEW.availability_version <> OLD.availability_version THEN
        PERFORM pg_notify('nearbytix_availability', NEW.id::text);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_availability_version
    BEFORE UPDATE ON events
    FOR EACH ROW
    WHEN ((NEW.total_tickets, NEW.tickets_sold, NEW.start_time, NEW.waitlist_enabled,
           NEW.waitlist_waiting, NEW.availability_version)
          IS DISTINCT FROM
          (OLD.total_tickets, OLD.tickets_sold, OLD.start_time, OLD.waitlist_enabled,
           OLD.waitlist_waiting, OLD.availability_version))
    EXECUTE FUNCTION bump_availability_version();

-- A tier added, removed, renamed, moved, or given another quantity or sales window bumps its
-- event (which announces it). Per statement where one statement writes many tiers.
CREATE FUNCTION bump_availability_for_tiers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        UPDATE events SET availability_version = availability_version + 1
         WHERE id IN (SELECT event_id FROM changed_tiers);
    ELSE
        UPDATE events SET availability_version = availability_version + 1
         WHERE id = NEW.event_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ticket_tiers_availability_added
    AFTER INSERT ON ticket_tiers REFERENCING NEW TABLE AS changed_tiers
    FOR EACH STATEMENT EXECUTE FUNCTION bump_availability_for_tiers();

CREATE TRIGGER ticket_tiers_availability_removed
    AFTER DELETE ON ticket_tiers REFERENCING OLD TABLE AS changed_tiers
    FOR EACH STATEMENT EXECUTE FUNCTION bump_availability_for_tiers();

CREATE TRIGGER ticket_tiers_availability_changed
    AFTER UPDATE ON ticket_tiers
    FOR EACH ROW
    WHEN ((NEW.name, NEW.quantity, NEW.sales_start, NEW.sales_end, NEW.position)
          IS DISTINCT FROM
          (OLD.name, OLD.quantity, OLD.sales_start, OLD.sales_end, OLD.position))
    EXECUTE FUNCTION bump_availability_for_tiers();

-- The sweeper looks for instants passed since its last pass among these.
CREATE INDEX ticket_tiers_sales_start_idx ON ticket_tiers (sales_start) WHERE sales_start IS NOT NULL;
CREATE INDEX ticket_tiers_sales_end_idx ON ticket_tiers (sales_end) WHERE sales_end IS NOT NULL;
