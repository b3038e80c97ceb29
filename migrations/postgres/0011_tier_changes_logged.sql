-- Whether an event can be bought now, and how much of it, follows from its tiers' quotas and
-- sales windows: a tier added or removed, or given another quota or window, changes what
-- search shows of its event, so it is logged (and announced) like a change of the event.
-- Seats sold and given back move the event's own counter in the same transaction, which logs
-- them already.
CREATE FUNCTION log_tier_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO event_changes (event_id) VALUES (OLD.event_id);
    ELSE
        INSERT INTO event_changes (event_id) VALUES (NEW.event_id);
    END IF;
    PERFORM pg_notify('nearbytix_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER ticket_tiers_changes_added_or_removed
    AFTER INSERT OR DELETE ON ticket_tiers
    FOR EACH ROW EXECUTE FUNCTION log_tier_changes();

CREATE TRIGGER ticket_tiers_changes_sale_rules
    AFTER UPDATE ON ticket_tiers
    FOR EACH ROW
    WHEN (NEW.quantity IS DISTINCT FROM OLD.quantity
          OR NEW.sales_start IS DISTINCT FROM OLD.sales_start
          OR NEW.sales_end IS DISTINCT FROM OLD.sales_end)
    EXECUTE FUNCTION log_tier_changes();
