-- Check-in at the door (CHECKIN.md): scanner tokens, the check-ins they record, the refused
-- scans, and the log of revoked codes the offline bundle follows.

-- A scanner's credential: only the SHA-256 of the token is kept; it is shown once, at creation.
CREATE TABLE scanner_tokens (
    id         uuid PRIMARY KEY,
    event_id   uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    label      text NOT NULL CONSTRAINT scanner_tokens_label_length
                   CHECK (char_length(label) BETWEEN 1 AND 100),
    -- true: every list of the event, later ones too; false: those in scanner_token_lists.
    all_lists  boolean NOT NULL,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX scanner_tokens_event_idx ON scanner_tokens (event_id, created_at, id);

CREATE TABLE scanner_token_lists (
    token_id uuid NOT NULL REFERENCES scanner_tokens (id) ON DELETE CASCADE,
    list_id  uuid NOT NULL REFERENCES checkin_lists (id) ON DELETE CASCADE,
    position integer NOT NULL,
    PRIMARY KEY (token_id, list_id)
);
CREATE INDEX scanner_token_lists_list_idx ON scanner_token_lists (list_id);

-- A successful scan. `seq` is the recording order (scans of one ticket are recorded under its
-- row lock, so their order is the order they were judged in); the ticket's state as the scan
-- saw it is kept, so a retried nonce is answered with the first answer unchanged.
CREATE TABLE checkins (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             uuid NOT NULL UNIQUE,
    list_id        uuid NOT NULL REFERENCES checkin_lists (id) ON DELETE CASCADE,
    event_id       uuid NOT NULL,
    ticket_id      uuid NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    kind           text NOT NULL CONSTRAINT checkins_kind_known CHECK (kind IN ('entry', 'exit')),
    nonce          text NOT NULL,
    code           text NOT NULL,
    scanned_at     timestamptz NOT NULL,
    gate           text,
    forced         boolean NOT NULL,
    -- The reason a forced scan overrode.
    reason         text,
    first_entry_at timestamptz,
    ticket_status  text NOT NULL,
    ticket_serial  integer NOT NULL,
    tier_name      text NOT NULL,
    holder_name    text NOT NULL,
    created_at     timestamptz NOT NULL,
    CONSTRAINT checkins_nonce_once UNIQUE (list_id, nonce)
);
CREATE INDEX checkins_ticket_idx ON checkins (list_id, ticket_id, seq);
CREATE INDEX checkins_event_idx ON checkins (event_id, ticket_id) WHERE kind = 'entry';

-- Refused scans, one row per (list, nonce): the last judgement of that nonce. `shard` (of the
-- nonce, 0–15) says which of the list's counters counts the row.
CREATE TABLE checkin_refusals (
    list_id    uuid NOT NULL REFERENCES checkin_lists (id) ON DELETE CASCADE,
    nonce      text NOT NULL,
    code       text NOT NULL,
    reason     text NOT NULL,
    scanned_at timestamptz NOT NULL,
    gate       text,
    created_at timestamptz NOT NULL,
    shard      integer NOT NULL,
    PRIMARY KEY (list_id, nonce)
);

-- How many refused scans each list logs (the log stops at CHECKIN_REFUSALS_PER_LIST), kept by
-- triggers in the transaction that logs or forgets one; in 16 rows a list, by nonce, so that
-- concurrent refusals seldom wait for one counter.
CREATE TABLE checkin_refusal_counts (
    list_id uuid NOT NULL REFERENCES checkin_lists (id) ON DELETE CASCADE,
    shard   integer NOT NULL,
    logged  bigint NOT NULL,
    PRIMARY KEY (list_id, shard)
);

CREATE FUNCTION count_checkin_refusals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO checkin_refusal_counts AS c (list_id, shard, logged)
        VALUES (NEW.list_id, NEW.shard, 1)
        ON CONFLICT (list_id, shard) DO UPDATE SET logged = c.logged + 1;
    ELSE
        UPDATE checkin_refusal_counts SET logged = logged - 1
        WHERE list_id = OLD.list_id AND shard = OLD.shard;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER checkin_refusals_counted AFTER INSERT OR DELETE ON checkin_refusals
    FOR EACH ROW EXECUTE FUNCTION count_checkin_refusals();

-- Tickets whose codes were revoked (a reissue, or the ticket left `paid`), numbered per event.
-- The number is taken under the event's head row, so numbers commit in order and a reader
-- that saw number n has seen every lower one: a bundle cursor never skips a revocation.
CREATE TABLE ticket_code_heads (
    event_id uuid PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    last_seq bigint NOT NULL
);
CREATE TABLE ticket_code_changes (
    event_id  uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seq       bigint NOT NULL,
    ticket_id uuid NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    PRIMARY KEY (event_id, seq)
);

CREATE FUNCTION log_ticket_code_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_seq bigint;
BEGIN
    INSERT INTO ticket_code_heads AS h (event_id, last_seq) VALUES (NEW.event_id, 1)
    ON CONFLICT (event_id) DO UPDATE SET last_seq = h.last_seq + 1
    RETURNING last_seq INTO next_seq;
    INSERT INTO ticket_code_changes (event_id, seq, ticket_id) VALUES (NEW.event_id, next_seq, NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER tickets_code_changes AFTER UPDATE OF status, code_serial ON tickets
    FOR EACH ROW
    WHEN (NEW.code_serial <> OLD.code_serial OR (OLD.status = 'paid' AND NEW.status <> 'paid'))
    EXECUTE FUNCTION log_ticket_code_change();

-- Tickets already revoked before this migration: reissued, or refunded.
INSERT INTO ticket_code_heads (event_id, last_seq)
SELECT t.event_id, count(*) FROM tickets t JOIN orders o ON o.id = t.order_id
WHERE t.code_serial > 1 OR (o.payment_status = 'refunded' AND t.status <> 'paid')
GROUP BY t.event_id;
INSERT INTO ticket_code_changes (event_id, seq, ticket_id)
SELECT t.event_id, row_number() OVER (PARTITION BY t.event_id ORDER BY t.id), t.id
FROM tickets t JOIN orders o ON o.id = t.order_id
WHERE t.code_serial > 1 OR (o.payment_status = 'refunded' AND t.status <> 'paid');
