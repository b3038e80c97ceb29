-- A log of committed changes to events, read by every server process to keep its in-memory
-- search read model (see `PgStore::event_changes`). Each row names the changed event and the
-- writing transaction: a reader keeps the snapshot of its read and next time reads the rows
-- of every transaction that snapshot could not see, so a change that committed late, after a
-- younger one was read, is never skipped. Rows are kept for an hour (purged by the sweeper);
-- a process further behind than that loads the model anew.
CREATE TABLE event_changes (
    event_id   uuid NOT NULL,
    change_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_changes_xid_idx ON event_changes (change_xid);
CREATE INDEX event_changes_changed_at_idx ON event_changes (changed_at);

-- Per statement: a batch of orders or a bulk insert logs its events with one INSERT. Changes
-- that can add or remove an event from search (not a seat count that leaves it on sale) are
-- also announced on `nearbytix_events` at commit, so that models follow at once rather than
-- at their next poll.
CREATE FUNCTION log_event_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO event_changes (event_id) SELECT id FROM new_events;
        PERFORM pg_notify('nearbytix_events', '');
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO event_changes (event_id) SELECT id FROM old_events;
        PERFORM pg_notify('nearbytix_events', '');
    ELSE
        INSERT INTO event_changes (event_id) SELECT id FROM new_events;
        IF EXISTS (
            SELECT 1 FROM old_events o JOIN new_events n USING (id)
            WHERE (o.tickets_sold < o.total_tickets) <> (n.tickets_sold < n.total_tickets)
               OR (o.title, o.description, o.start_time, o.end_time, o.latitude, o.longitude,
                   o.venue_name, o.city, o.state, o.currency, o.max_tickets_per_user)
                  IS DISTINCT FROM
                  (n.title, n.description, n.start_time, n.end_time, n.latitude, n.longitude,
                   n.venue_name, n.city, n.state, n.currency, n.max_tickets_per_user)
        ) THEN
            PERFORM pg_notify('nearbytix_events', '');
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_changes_inserted
    AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION log_event_changes();

CREATE TRIGGER events_changes_updated
    AFTER UPDATE ON events REFERENCING OLD TABLE AS old_events NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION log_event_changes();

CREATE TRIGGER events_changes_deleted
    AFTER DELETE ON events REFERENCING OLD TABLE AS old_events
    FOR EACH STATEMENT EXECUTE FUNCTION log_event_changes();
