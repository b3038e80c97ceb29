-- Check-in at the door (CHECKIN.md): scanner tokens, the check-ins they record, the refused
-- scans, and the log of revoked codes the offline bundle follows. Times are microseconds.

-- A scanner's credential: only the SHA-256 of the token is kept; it is shown once, at creation.
CREATE TABLE scanner_tokens (
    id         BLOB PRIMARY KEY,
    event_id   BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    label      TEXT NOT NULL CONSTRAINT scanner_tokens_label_length
                   CHECK (length(label) BETWEEN 1 AND 100),
    -- 1: every list of the event, later ones too; 0: those in scanner_token_lists.
    all_lists  INTEGER NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX scanner_tokens_event_idx ON scanner_tokens (event_id, created_at, id);

CREATE TABLE scanner_token_lists (
    token_id BLOB NOT NULL REFERENCES scanner_tokens (id) ON DELETE CASCADE,
    list_id  BLOB NOT NULL REFERENCES checkin_lists (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    PRIMARY KEY (token_id, list_id)
);
CREATE INDEX scanner_token_lists_list_idx ON scanner_token_lists (list_id);

-- A successful scan. `seq` is the recording order (the write transaction holds the whole
-- database); the ticket's state as the scan saw it is kept, so a retried nonce is answered
-- with the first answer unchanged.
CREATE TABLE checkins (
    seq            INTEGER PRIMARY KEY,
    id             BLOB NOT NULL UNIQUE,
    list_id        BLOB NOT NULL REFERENCES checkin_lists (id) ON DELETE CASCADE,
    event_id       BLOB NOT NULL,
    ticket_id      BLOB NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CONSTRAINT checkins_kind_known CHECK (kind IN ('entry', 'exit')),
    nonce          TEXT NOT NULL,
    code           TEXT NOT NULL,
    scanned_at     INTEGER NOT NULL,
    gate           TEXT,
    forced         INTEGER NOT NULL,
    -- The reason a forced scan overrode.
    reason         TEXT,
    first_entry_at INTEGER,
    ticket_status  TEXT NOT NULL,
    ticket_serial  INTEGER NOT NULL,
    tier_name      TEXT NOT NULL,
    holder_name    TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    CONSTRAINT checkins_nonce_once UNIQUE (list_id, nonce)
);
CREATE INDEX checkins_ticket_idx ON checkins (list_id, ticket_id, seq);
CREATE INDEX checkins_event_idx ON checkins (event_id, ticket_id) WHERE kind = 'entry';

-- Refused scans, one row per (list, nonce): the last judgement of that nonce. `shard` (of the
-- nonce, 0–15) says which of the list's counters counts the row.
CREATE TABLE checkin_refusals (
    list_id    BLOB NOT NULL REFERENCES checkin_lists (id) ON DELETE CASCADE,
    nonce      TEXT NOT NULL,
    code       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    scanned_at INTEGER NOT NULL,
    gate       TEXT,
    created_at INTEGER NOT NULL,
    shard      INTEGER NOT NULL,
    PRIMARY KEY (list_id, nonce)
);

-- How many refused scans each list logs (the log stops at CHECKIN_REFUSALS_PER_LIST), kept by
-- triggers in the transaction that logs or forgets one (16 rows a list, as on PostgreSQL).
CREATE TABLE checkin_refusal_counts (
    list_id BLOB NOT NULL REFERENCES checkin_lists (id) ON DELETE CASCADE,
    shard   INTEGER NOT NULL,
    logged  INTEGER NOT NULL,
    PRIMARY KEY (list_id, shard)
);

CREATE TRIGGER checkin_refusals_logged AFTER INSERT ON checkin_refusals
BEGIN
    INSERT INTO checkin_refusal_counts (list_id, shard, logged) VALUES (NEW.list_id, NEW.shard, 1)
        ON CONFLICT (list_id, shard) DO UPDATE SET logged = logged + 1;
END;

CREATE TRIGGER checkin_refusals_forgotten AFTER DELETE ON checkin_refusals
BEGIN
    UPDATE checkin_refusal_counts SET logged = logged - 1
    WHERE list_id = OLD.list_id AND shard = OLD.shard;
END;

-- Tickets whose codes were revoked (a reissue, or the ticket left `paid`), numbered per event
-- (one writer at a time: numbers commit in order, so a bundle cursor never skips one).
CREATE TABLE ticket_code_heads (
    event_id BLOB PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    last_seq INTEGER NOT NULL
);
CREATE TABLE ticket_code_changes (
    event_id  BLOB NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    ticket_id BLOB NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    PRIMARY KEY (event_id, seq)
);

CREATE TRIGGER tickets_code_changes AFTER UPDATE OF status, code_serial ON tickets
WHEN NEW.code_serial <> OLD.code_serial OR (OLD.status = 'paid' AND NEW.status <> 'paid')
BEGIN
    INSERT INTO ticket_code_heads (event_id, last_seq) VALUES (NEW.event_id, 1)
        ON CONFLICT (event_id) DO UPDATE SET last_seq = last_seq + 1;
    INSERT INTO ticket_code_changes (event_id, seq, ticket_id)
        SELECT NEW.event_id, last_seq, NEW.id FROM ticket_code_heads WHERE event_id = NEW.event_id;
END;

-- Tickets already revoked before this migration: reissued, or refunded.
INSERT INTO ticket_code_heads (event_id, last_seq)
SELECT t.event_id, count(*) FROM tickets t JOIN orders o ON o.id = t.order_id
WHERE t.code_serial > 1 OR (o.payment_status = 'refunded' AND t.status <> 'paid')
GROUP BY t.event_id;
INSERT INTO ticket_code_changes (event_id, seq, ticket_id)
SELECT t.event_id, row_number() OVER (PARTITION BY t.event_id ORDER BY t.id), t.id
FROM tickets t JOIN orders o ON o.id = t.order_id
WHERE t.code_serial > 1 OR (o.payment_status = 'refunded' AND t.status <> 'paid');
