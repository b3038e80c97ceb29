-- A log of committed changes to events, read by every server process to keep its in-memory
-- search read model (see `SqliteStore::event_changes`). SQLite has one writer at a time, so
-- `seq` grows in commit order and a reader resumes after the last `seq` it read.
-- AUTOINCREMENT: a `seq` is never reused, even after the sweeper purged every row (rows are
-- kept for an hour; a process further behind than that loads the model anew).
CREATE TABLE event_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   BLOB NOT NULL,
    changed_at INTEGER NOT NULL -- microseconds since 1970-01-01 UTC
);
CREATE INDEX event_changes_changed_at_idx ON event_changes (changed_at);

CREATE TRIGGER events_changes_inserted AFTER INSERT ON events BEGIN
    INSERT INTO event_changes (event_id, changed_at)
    VALUES (new.id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER events_changes_updated AFTER UPDATE ON events BEGIN
    INSERT INTO event_changes (event_id, changed_at)
    VALUES (new.id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER events_changes_deleted AFTER DELETE ON events BEGIN
    INSERT INTO event_changes (event_id, changed_at)
    VALUES (old.id, CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
