-- Whether an event can be bought now, and how much of it, follows from its tiers' quotas and
-- sales windows: a tier added or removed, or given another quota or window, changes what
-- search shows of its event, so it is logged (and announced) like a change of the event.
-- Seats sold and given back move the event's own counter in the same transaction, which logs
-- them already. Per statement where a statement adds or removes many tiers (an event created
-- or deleted with its tiers); per row, filtered, where sales update tiers all the time.
CREATE FUNCTION log_tier_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        INSERT INTO event_changes (event_id) SELECT DISTINCT event_id FROM changed_tiers;
    ELSE
        INSERT INTO event_changes (event_id) VALUES (NEW.event_id);
    END IF;
    PERFORM pg_notify('nearbytix_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER ticket_tiers_changes_added
    AFTER INSERT ON ticket_tiers REFERENCING NEW TABLE AS changed_tiers
    FOR EACH STATEMENT EXECUTE FUNCTION log_tier_changes();

CREATE TRIGGER ticket_tiers_changes_removed
    AFTER DELETE ON ticket_tiers REFERENCING OLD TABLE AS changed_tiers
    FOR EACH STATEMENT EXECUTE FUNCTION log_tier_changes();

CREATE TRIGGER ticket_tiers_changes_sale_rules
    AFTER UPDATE ON ticket_tiers
    FOR EACH ROW
    WHEN (NEW.quantity IS DISTINCT FROM OLD.quantity
          OR NEW.sales_start IS DISTINCT FROM OLD.sales_start
          OR NEW.sales_end IS DISTINCT FROM OLD.sales_end)
    EXECUTE FUNCTION log_tier_changes();
