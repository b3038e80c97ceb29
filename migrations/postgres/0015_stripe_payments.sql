-- Payments through Stripe (PAYMENTS.md): every PaymentIntent the server created, the refunds
-- owed or made, and the webhook events already processed.

-- Intents started for an order so far (`PAYMENT_ATTEMPTS_PER_ORDER` bounds it).
ALTER TABLE orders ADD COLUMN payment_attempts integer NOT NULL DEFAULT 0;

-- Every intent the server created: a webhook or the reconciler finds its order by the id
-- stored here, never by the intent's metadata. No foreign key: an intent outlives its order
-- (an event deleted meanwhile), so that money taken for it is still refunded.
CREATE TABLE payment_intents (
    id           text PRIMARY KEY,
    order_id     uuid NOT NULL,
    attempt      integer NOT NULL,
    amount_minor bigint NOT NULL,
    -- Lower case, as Stripe writes it.
    currency     text NOT NULL,
    status       text NOT NULL DEFAULT 'open'
        CONSTRAINT payment_intents_status_known
        CHECK (status IN ('open', 'failed', 'canceled', 'succeeded')),
    created_at   timestamptz NOT NULL,
    -- When Stripe last told of it (or was asked): the reconciler asks about open intents
    -- unheard of for `PAYMENT_RECONCILE_AFTER_SECONDS`.
    heard_at     timestamptz NOT NULL,
    CONSTRAINT payment_intents_attempt_unique UNIQUE (order_id, attempt)
);
-- Failed ones too: at Stripe a failed intent can still be confirmed, until it is cancelled.
CREATE INDEX payment_intents_open_idx ON payment_intents (heard_at)
    WHERE status IN ('open', 'failed');

-- Refunds owed or made, one per intent (Stripe's `Idempotency-Key: nearbytix-refund-{intent}`):
-- written as owed before Stripe is called, so none is lost when the call fails or the
-- process dies; the reconciler retries owed ones (listing the intent's refunds first).
CREATE TABLE payment_refunds (
    intent_id    text PRIMARY KEY,
    order_id     uuid NOT NULL,
    amount_minor bigint NOT NULL CONSTRAINT payment_refunds_amount_positive CHECK (amount_minor > 0),
    -- What the intent took: the refund is made once Stripe gave back this much.
    charged_minor bigint NOT NULL,
    -- `late`: paid after the hold ended with no seats to give; `extra`: a second payment of
    -- an order (or of one cancelled meanwhile); `organiser`: asked by the event's creator.
    reason       text NOT NULL
        CONSTRAINT payment_refunds_reason_known CHECK (reason IN ('late', 'extra', 'organiser')),
    state        text NOT NULL DEFAULT 'owed'
        CONSTRAINT payment_refunds_state_known CHECK (state IN ('owed', 'done')),
    requested_at timestamptz NOT NULL,
    tried_at     timestamptz NOT NULL
);
CREATE INDEX payment_refunds_owed_idx ON payment_refunds (tried_at) WHERE state = 'owed';

-- Webhook events processed, with their outcome, kept 30 days: a repeat is answered as such.
CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at);
