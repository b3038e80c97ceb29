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
-- The sums a fold is writing (marked 2 until it ends), found without a scan.
CREATE INDEX buyer_history_folding_idx ON buyer_history (user_id) WHERE folded = 2;

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

-- A row that becomes cancelled or expired counts +1 there; one that leaves such a state (a
-- late payment re-reserving an expired order) or is deleted (with its event) counts -1.
CREATE TRIGGER orders_history_noted AFTER UPDATE OF status ON orders
    WHEN old.status IS NOT new.status
     AND (new.status IN ('cancelled', 'expired') OR old.status IN ('cancelled', 'expired'))
BEGIN
    INSERT INTO buyer_history (user_id, orders_cancelled, orders_expired)
    VALUES (new.user_id, (new.status = 'cancelled') - (old.status = 'cancelled'),
            (new.status = 'expired') - (old.status = 'expired'));
END;

CREATE TRIGGER tickets_history_noted AFTER UPDATE OF status ON tickets
    WHEN old.status IS NOT new.status
     AND (new.status IN ('cancelled', 'expired') OR old.status IN ('cancelled', 'expired'))
BEGIN
    INSERT INTO buyer_history (user_id, tickets_cancelled, tickets_expired)
    VALUES (new.user_id, (new.status = 'cancelled') - (old.status = 'cancelled'),
            (new.status = 'expired') - (old.status = 'expired'));
END;

CREATE TRIGGER orders_history_deleted AFTER DELETE ON orders
    WHEN old.status IN ('cancelled', 'expired')
BEGIN
    INSERT INTO buyer_history (user_id, orders_cancelled, orders_expired)
    VALUES (old.user_id, -(old.status = 'cancelled'), -(old.status = 'expired'));
END;

CREATE TRIGGER tickets_history_deleted AFTER DELETE ON tickets
    WHEN old.status IN ('cancelled', 'expired')
BEGIN
    INSERT INTO buyer_history (user_id, tickets_cancelled, tickets_expired)
    VALUES (old.user_id, -(old.status = 'cancelled'), -(old.status = 'expired'));
END;

-- A buyer's live orders, for their count and their reserved and paid pages, whatever their
-- history (tickets have `tickets_user_event_live_idx`).
CREATE INDEX orders_user_live_idx ON orders (user_id, created_at DESC, id DESC)
    WHERE status IN ('reserved', 'paid');
