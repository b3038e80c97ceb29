-- A buyer's cancelled and expired orders and tickets, counted, so that a page of their orders
-- or tickets tells its total without counting that history row by row. A trigger appends a
-- row at each order or ticket that becomes cancelled or expired (an insert: no lock another
-- writer waits for); the sweeper folds a buyer's rows into one (`folded`) every few seconds,
-- so a count reads one row plus those since the last fold. No foreign key: appending a
-- row takes no lock on the buyer's account.
-- Counted and noted from one moment: no status changes between the count and the triggers.
LOCK TABLE orders, tickets IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE buyer_history (
    user_id           uuid NOT NULL,
    orders_cancelled  integer NOT NULL DEFAULT 0,
    orders_expired    integer NOT NULL DEFAULT 0,
    tickets_cancelled integer NOT NULL DEFAULT 0,
    tickets_expired   integer NOT NULL DEFAULT 0,
    folded            boolean NOT NULL DEFAULT false
);
CREATE INDEX buyer_history_user_idx ON buyer_history (user_id);
CREATE INDEX buyer_history_unfolded_idx ON buyer_history (user_id) WHERE NOT folded;

INSERT INTO buyer_history (user_id, orders_cancelled, orders_expired, tickets_cancelled,
                           tickets_expired, folded)
SELECT user_id, sum(orders_cancelled), sum(orders_expired), sum(tickets_cancelled),
       sum(tickets_expired), true
FROM (
    SELECT user_id, count(*) FILTER (WHERE status = 'cancelled') AS orders_cancelled,
           count(*) FILTER (WHERE status = 'expired') AS orders_expired,
           0 AS tickets_cancelled, 0 AS tickets_expired
    FROM orders WHERE status IN ('cancelled', 'expired') GROUP BY user_id
    UNION ALL
    SELECT user_id, 0, 0, count(*) FILTER (WHERE status = 'cancelled'),
           count(*) FILTER (WHERE status = 'expired')
    FROM tickets WHERE status IN ('cancelled', 'expired') GROUP BY user_id
) closed
GROUP BY user_id;

-- A row that becomes cancelled or expired counts +1 there; one that leaves such a state (a
-- late payment re-reserving an expired order) or is deleted (with its event) counts -1.
CREATE FUNCTION note_buyer_history() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    buyer uuid;
    cancelled integer := 0;
    expired integer := 0;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        buyer := NEW.user_id;
        cancelled := (NEW.status = 'cancelled')::int;
        expired := (NEW.status = 'expired')::int;
    ELSE
        buyer := OLD.user_id;
    END IF;
    cancelled := cancelled - (OLD.status = 'cancelled')::int;
    expired := expired - (OLD.status = 'expired')::int;
    IF TG_TABLE_NAME = 'orders' THEN
        INSERT INTO buyer_history (user_id, orders_cancelled, orders_expired)
        VALUES (buyer, cancelled, expired);
    ELSE
        INSERT INTO buyer_history (user_id, tickets_cancelled, tickets_expired)
        VALUES (buyer, cancelled, expired);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_history_noted
    AFTER UPDATE OF status ON orders
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND (NEW.status IN ('cancelled', 'expired') OR OLD.status IN ('cancelled', 'expired')))
    EXECUTE FUNCTION note_buyer_history();

CREATE TRIGGER tickets_history_noted
    AFTER UPDATE OF status ON tickets
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND (NEW.status IN ('cancelled', 'expired') OR OLD.status IN ('cancelled', 'expired')))
    EXECUTE FUNCTION note_buyer_history();

CREATE TRIGGER orders_history_deleted
    AFTER DELETE ON orders
    FOR EACH ROW
    WHEN (OLD.status IN ('cancelled', 'expired'))
    EXECUTE FUNCTION note_buyer_history();

CREATE TRIGGER tickets_history_deleted
    AFTER DELETE ON tickets
    FOR EACH ROW
    WHEN (OLD.status IN ('cancelled', 'expired'))
    EXECUTE FUNCTION note_buyer_history();

-- A buyer's live orders, for their count and their reserved and paid pages, whatever their
-- history (tickets have `tickets_user_event_live_idx`).
CREATE INDEX orders_user_live_idx ON orders (user_id, created_at DESC, id DESC)
    WHERE status IN ('reserved', 'paid');
