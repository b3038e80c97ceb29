-- An event's stats are read from counters its sales keep, so they cost by tiers, not tickets:
-- per tier, the paid tickets and their revenue at the orders' prices, moved by each payment in
-- its own transaction (reserved = sold - paid - holds already due).
ALTER TABLE ticket_tiers
    ADD COLUMN paid integer NOT NULL DEFAULT 0,
    ADD COLUMN revenue_minor bigint NOT NULL DEFAULT 0;
UPDATE ticket_tiers tt SET
    paid = (SELECT count(*) FROM tickets t WHERE t.tier_id = tt.id AND t.status = 'paid'),
    revenue_minor = (SELECT coalesce(sum(oi.unit_price_minor), 0)
                     FROM tickets t
                     JOIN order_items oi ON oi.order_id = t.order_id AND oi.tier_id = t.tier_id
                     WHERE t.tier_id = tt.id AND t.status = 'paid');
ALTER TABLE ticket_tiers
    ADD CONSTRAINT ticket_tiers_paid_range CHECK (paid >= 0 AND paid <= sold);
