-- A buyer's cancelled and expired orders and tickets, counted, so that a page of their orders
-- or tickets tells its total without counting that history row by row. A trigger appends a
-- row at each order or ticket that becomes cancelled or expired (an insert: no lock another
-- writer waits for); the sweeper folds a buyer's rows into one (`folded`) every few seconds,
-- so a count reads one row plus those since the last fold. No foreign key: appending a
-- row takes no lock on the buyer's account.
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

-- A row closed counts +1; a closed row deleted (with its event) counts -1.
CREATE FUNCTION note_buyer_history() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed record;
    sign integer;
BEGIN
    IF TG_OP = 'DELETE' THEN
        closed := OLD;
        sign := -1;
    ELSE
        closed := NEW;
        sign := 1;
    END IF;
    IF TG_TABLE_NAME = 'orders' THEN
        INSERT INTO buyer_history (user_id, orders_cancelled, orders_expired)
        VALUES (closed.user_id, sign * (closed.status = 'cancelled')::int,
                sign * (closed.status = 'expired')::int);
    ELSE
        INSERT INTO buyer_history (user_id, tickets_cancelled, tickets_expired)
        VALUES (closed.user_id, sign * (closed.status = 'cancelled')::int,
                sign * (closed.status = 'expired')::int);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_closed_noted
    AFTER UPDATE OF status ON orders
    FOR EACH ROW
    WHEN (NEW.status IN ('cancelled', 'expired') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION note_buyer_history();

CREATE TRIGGER tickets_closed_noted
    AFTER UPDATE OF status ON tickets
    FOR EACH ROW
    WHEN (NEW.status IN ('cancelled', 'expired') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION note_buyer_history();

CREATE TRIGGER orders_closed_deleted
    AFTER DELETE ON orders
    FOR EACH ROW
    WHEN (OLD.status IN ('cancelled', 'expired'))
    EXECUTE FUNCTION note_buyer_history();

CREATE TRIGGER tickets_closed_deleted
    AFTER DELETE ON tickets
    FOR EACH ROW
    WHEN (OLD.status IN ('cancelled', 'expired'))
    EXECUTE FUNCTION note_buyer_history();

-- A page of one status reads that status's rows in page order, whatever else the buyer has.
CREATE INDEX tickets_user_status_created_idx ON tickets (user_id, status, created_at DESC, id DESC);
CREATE INDEX orders_user_status_created_idx ON orders (user_id, status, created_at DESC, id DESC);
