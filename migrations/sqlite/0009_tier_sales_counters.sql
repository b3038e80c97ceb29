-- An event's stats are read from counters its sales keep, so they cost by tiers, not tickets:
-- per tier, the paid tickets and their revenue at the orders' prices, moved by each payment in
-- its own transaction (reserved = sold - paid - holds already due).
ALTER TABLE ticket_tiers ADD COLUMN paid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ticket_tiers ADD COLUMN revenue_minor INTEGER NOT NULL DEFAULT 0;
UPDATE ticket_tiers SET
    paid = (SELECT count(*) FROM tickets t WHERE t.tier_id = ticket_tiers.id AND t.status = 'paid'),
    revenue_minor = (SELECT coalesce(sum(oi.unit_price_minor), 0)
                     FROM tickets t
                     JOIN order_items oi ON oi.order_id = t.order_id AND oi.tier_id = t.tier_id
                     WHERE t.tier_id = ticket_tiers.id AND t.status = 'paid');
