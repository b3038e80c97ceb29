-- Whether an event can be bought now, and how much of it, follows from its tiers' quotas and
-- sales windows: a tier added or removed, or given another quota or window, changes what
-- search shows of its event, so it is logged like a change of the event. Seats sold and given
-- back move the event's own counter in the same transaction, which logs them already.
CREATE TRIGGER ticket_tiers_changes_inserted AFTER INSERT ON ticket_tiers BEGIN
    INSERT INTO event_changes (event_id, changed_at)
    VALUES (new.event_id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER ticket_tiers_changes_deleted AFTER DELETE ON ticket_tiers BEGIN
    INSERT INTO event_changes (event_id, changed_at)
    VALUES (old.event_id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER ticket_tiers_changes_sale_rules
    AFTER UPDATE OF quantity, sales_start, sales_end ON ticket_tiers
    WHEN new.quantity IS NOT old.quantity
      OR new.sales_start IS NOT old.sales_start
      OR new.sales_end IS NOT old.sales_end
BEGIN
    INSERT INTO event_changes (event_id, changed_at)
    VALUES (new.event_id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
