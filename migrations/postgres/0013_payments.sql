-- Every order carries its payment (PAYMENTS.md): the provider that took it, where it stands,
-- the provider's intent, what was given back and why the last attempt failed. Orders paid
-- before this had their money taken by the simulated payment: `succeeded` when not free.
ALTER TABLE orders
    ADD COLUMN payment_provider text NOT NULL DEFAULT 'none'
        CONSTRAINT orders_payment_provider_known CHECK (payment_provider IN ('none', 'stripe')),
    ADD COLUMN payment_status text NOT NULL DEFAULT 'none'
        CONSTRAINT orders_payment_status_known
        CHECK (payment_status IN ('none', 'pending', 'succeeded', 'failed', 'refunded')),
    ADD COLUMN payment_intent_id text,
    ADD COLUMN refunded_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN payment_failure_code text,
    ADD COLUMN payment_updated_at timestamptz;
UPDATE orders SET payment_status = 'succeeded', payment_updated_at = paid_at
WHERE status = 'paid' AND total_minor > 0;
ALTER TABLE orders ADD CONSTRAINT orders_refunded_range
    CHECK (refunded_minor >= 0 AND refunded_minor <= total_minor);

-- What an event's orders were given back, for its stats (kept by each refund's transaction).
ALTER TABLE events ADD COLUMN refunded_minor bigint NOT NULL DEFAULT 0;

-- A refund gives the order's seats back through the seat ledger, under its own cause.
ALTER TABLE seat_returns DROP CONSTRAINT seat_returns_cause_known;
ALTER TABLE seat_returns ADD CONSTRAINT seat_returns_cause_known CHECK (cause IN
    ('cancelled', 'expired', 'refunded', 'capacity_raised', 'tier_raised', 'tier_added'));
