-- One row the health check rewrites: a real write (through the WAL and the commit) is the only
-- way to know the database file can still take writes (a full disk, a read-only file).
CREATE TABLE health_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
