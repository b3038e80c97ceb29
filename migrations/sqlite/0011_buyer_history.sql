-- A buyer's cancelled and expired orders and tickets, counted, so that a page of their orders
-- or tickets tells its total without counting that history row by row. A trigger appends a
-- row at each order or ticket that becomes cancelled or expired; the sweeper folds a buyer's
-- rows into one (`folded`) every few seconds, so a count reads one row plus those since the
-- last fold. No foreign key: appending a row takes no lock on the buyer's
-- account.
CREATE TABLE buyer_history (
    user_id           BLOB NOT NULL,
    orders_cancelled  INTEGER NOT NULL DEFAULT 0,
    orders_expired    INTEGER NOT NULL DEFAULT 0,
    tickets_cancelled INTEGER NOT NULL DEFAULT 0,
    tickets_expired   INTEGER NOT NULL DEFAULT 0,
    folded            INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX buyer_history_user_idx ON buyer_history (user_id);
CREATE INDEX buyer_history_unfolded_idx ON buyer_history (user_id) WHERE NOT folded;

INSERT INTO buyer_history (user_id, orders_cancelled, orders_expired, tickets_cancelled,
                           tickets_expired, folded)
SELECT user_id, sum(orders_cancelled), sum(orders_expired), sum(tickets_cancelled),
       sum(tickets_expired), 1
FROM (
    SELECT user_id, sum(status = 'cancelled') AS orders_cancelled,
           sum(status = 'expired') AS orders_expired,
           0 AS tickets_cancelled, 0 AS tickets_expired
    FROM orders WHERE status IN ('cancelled', 'expired') GROUP BY user_id
    UNION ALL
    SELECT user_id, 0, 0, sum(status = 'cancelled'), sum(status = 'expired')
    FROM tickets WHERE status IN ('cancelled', 'expired') GROUP BY user_id
)
GROUP BY user_id;

CREATE TRIGGER orders_closed_noted AFTER UPDATE OF status ON orders
    WHEN new.status IN ('cancelled', 'expired') AND old.status IS NOT new.status
BEGIN
    INSERT INTO buyer_history (user_id, orders_cancelled, orders_expired)
    VALUES (new.user_id, new.status = 'cancelled', new.status = 'expired');
END;

CREATE TRIGGER tickets_closed_noted AFTER UPDATE OF status ON tickets
    WHEN new.status IN ('cancelled', 'expired') AND old.status IS NOT new.status
BEGIN
    INSERT INTO buyer_history (user_id, tickets_cancelled, tickets_expired)
    VALUES (new.user_id, new.status = 'cancelled', new.status = 'expired');
END;

-- A closed row deleted (with its event) counts -1.
CREATE TRIGGER orders_closed_deleted AFTER DELETE ON orders
    WHEN old.status IN ('cancelled', 'expired')
BEGIN
    INSERT INTO buyer_history (user_id, orders_cancelled, orders_expired)
    VALUES (old.user_id, -(old.status = 'cancelled'), -(old.status = 'expired'));
END;

CREATE TRIGGER tickets_closed_deleted AFTER DELETE ON tickets
    WHEN old.status IN ('cancelled', 'expired')
BEGIN
    INSERT INTO buyer_history (user_id, tickets_cancelled, tickets_expired)
    VALUES (old.user_id, -(old.status = 'cancelled'), -(old.status = 'expired'));
END;

-- A page of one status reads that status's rows in page order, whatever else the buyer has.
CREATE INDEX tickets_user_status_created_idx ON tickets (user_id, status, created_at DESC, id DESC);
CREATE INDEX orders_user_status_created_idx ON orders (user_id, status, created_at DESC, id DESC);
