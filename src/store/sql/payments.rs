//! Payments through a provider: the statements of [`crate::store::PaymentStore`], and the
//! store itself written once for both backends ([`payment_store!`]). A macro, not generic
//! functions: each backend instantiates it with its own connection and transaction types,
//! which keeps sqlx's bounds out of sight.
//!
//! Every call that moves an order locks the intent's row, then the order's, then (to take seats
//! again) the event's: the order every writer that holds an order row takes them in.

/// `$1` order, `$2` buyer, `$3` intent, `$4` attempt, `$5` now, `$6` now + the payment
/// window: the intent is the order's current one, `pending`, when the order is reserved within
/// its hold and had `$4 - 1` intents; the first one extends the hold to `$6`.
pub(in crate::store) const RECORD_INTENT: &str = "UPDATE orders SET payment_provider = 'stripe',
        payment_status = 'pending', payment_intent_id = $3, payment_attempts = $4,
        payment_failure_code = NULL, payment_updated_at = $5, updated_at = $5,
        expires_at = CASE WHEN $4 = 1 AND expires_at < $6 THEN $6 ELSE expires_at END
     WHERE id = $1 AND user_id = $2 AND status = 'reserved' AND expires_at > $5
       AND payment_attempts = $4 - 1
     RETURNING expires_at";

/// `$1` order, `$2` its hold's end: its tickets are held as long.
pub(in crate::store) const HOLD_TICKETS_UNTIL: &str =
    "UPDATE tickets SET expires_at = $2 WHERE order_id = $1";

pub(in crate::store) const INSERT_INTENT: &str = "INSERT INTO payment_intents
        (id, order_id, attempt, amount_minor, currency, created_at, heard_at)
     VALUES ($1, $2, $3, $4, $5, $6, $6)";

/// `$1` intent, `$2` now (a lock suffix follows): its order, amount, currency and status.
pub(in crate::store) const INTENT: &str =
    "SELECT order_id, amount_minor, currency, status FROM payment_intents WHERE id = $1";

pub(in crate::store) const INTENT_SUCCEEDED: &str =
    "UPDATE payment_intents SET status = 'succeeded', heard_at = $2 WHERE id = $1";

/// `$1` order, `$2` now (a lock suffix follows): what the success rule reads of it.
pub(in crate::store) const ORDER_FOR_PAYMENT: &str = "SELECT user_id, event_id, status,
        expires_at <= $2 AS past_hold, payment_intent_id, total_minor, waitlist_entry_id
     FROM orders WHERE id = $1";

/// An [`ORDER_FOR_PAYMENT`] row.
#[derive(sqlx::FromRow)]
pub(in crate::store) struct PaymentOrderRow {
    pub user_id: uuid::Uuid,
    pub event_id: uuid::Uuid,
    pub status: String,
    pub past_hold: bool,
    pub payment_intent_id: Option<String>,
    pub total_minor: i64,
    pub waitlist_entry_id: Option<uuid::Uuid>,
}

/// `$1` order, `$2` intent, `$3` now: paid through that intent (its tickets follow).
pub(in crate::store) const PAY_THROUGH_INTENT: &str = "UPDATE orders SET status = 'paid',
        paid_at = $3, updated_at = $3, payment_status = 'succeeded', payment_intent_id = $2,
        payment_failure_code = NULL, payment_updated_at = $3
     WHERE id = $1
     RETURNING event_id, total_minor, waitlist_entry_id";

/// `$1` order, `$2` intent, `$3` now: the money was taken through that intent, for an order
/// that is not paid (a refund is owed).
pub(in crate::store) const TAKEN_THROUGH_INTENT: &str = "UPDATE orders SET
        payment_status = 'succeeded', payment_intent_id = $2, payment_failure_code = NULL,
        payment_updated_at = $3, updated_at = $3
     WHERE id = $1";

/// `$1` order, `$2` now: a hold that ended unpaid, expired (its tickets follow).
pub(in crate::store) const EXPIRE_ORDER: &str = "UPDATE orders SET status = 'expired',
        updated_at = $2 WHERE id = $1 AND status = 'reserved'";

/// `$1` event, `$2` now (a lock suffix follows): whether it is still to start, the seats it
/// has left and its cap per person.
pub(in crate::store) const EVENT_FOR_RETAKE: &str =
    "SELECT start_time > $2, CAST(total_tickets - tickets_sold AS BIGINT), max_tickets_per_user
     FROM events WHERE id = $1";

/// `$1` order: its seats and lines.
pub(in crate::store) const ORDER_SIZE: &str =
    "SELECT CAST(COALESCE(sum(quantity), 0) AS BIGINT), count(*) FROM order_items
     WHERE order_id = $1";

/// `$1` order, `$2` now: its lines whose tiers are on sale with their seats left.
pub(in crate::store) const LINES_THAT_FIT: &str = "SELECT count(*) FROM order_items i
     JOIN ticket_tiers t ON t.id = i.tier_id AND t.event_id = i.event_id
     WHERE i.order_id = $1 AND (t.quantity IS NULL OR t.sold + i.quantity <= t.quantity)
       AND (t.sales_start IS NULL OR t.sales_start <= $2)
       AND (t.sales_end IS NULL OR t.sales_end > $2)";

/// `$1` order, `$2` now: its lines whose tiers are on sale (its seats still held).
pub(in crate::store) const LINES_ON_SALE: &str = "SELECT count(*) FROM order_items i
     JOIN ticket_tiers t ON t.id = i.tier_id AND t.event_id = i.event_id
     WHERE i.order_id = $1
       AND (t.sales_start IS NULL OR t.sales_start <= $2)
       AND (t.sales_end IS NULL OR t.sales_end > $2)";

/// `$1` buyer, `$2` event, `$3` now: the live tickets they hold for it.
pub(in crate::store) const BUYER_HOLDS: &str = "SELECT count(*) FROM tickets
     WHERE user_id = $1 AND event_id = $2
       AND (status = 'paid' OR (status = 'reserved' AND expires_at > $3))";

/// `$1` event, `$2` seats, `$3` now.
pub(in crate::store) const TAKE_EVENT_SEATS: &str =
    "UPDATE events SET tickets_sold = tickets_sold + $2, updated_at = $3 WHERE id = $1";

/// `$1` order, `$2` now: its tiers count its seats again.
pub(in crate::store) const TAKE_TIER_SEATS: &str = "UPDATE ticket_tiers SET
        sold = sold + (SELECT i.quantity FROM order_items i
                       WHERE i.order_id = $1 AND i.tier_id = ticket_tiers.id),
        updated_at = $2
     WHERE id IN (SELECT tier_id FROM order_items WHERE order_id = $1)";

pub(in crate::store) const OWE_REFUND: &str = "INSERT INTO payment_refunds
        (intent_id, order_id, amount_minor, charged_minor, reason, requested_at, tried_at)
     VALUES ($1, $2, $3, $4, $5, $6, $6)
     ON CONFLICT (intent_id) DO NOTHING";

/// `$1` intent, `$2` state (`failed`, or `canceled`, which a failed one may still become),
/// `$3` now.
pub(in crate::store) const INTENT_CLOSED: &str =
    "UPDATE payment_intents SET status = $2, heard_at = $3
     WHERE id = $1 AND (status = 'open' OR (status = 'failed' AND $2 = 'canceled'))
     RETURNING order_id";

/// `$1` order, `$2` intent, `$3` failure code, `$4` now.
pub(in crate::store) const PAYMENT_FAILED: &str = "UPDATE orders SET payment_status = 'failed',
        payment_failure_code = $3, payment_updated_at = $4, updated_at = $4
     WHERE id = $1 AND payment_intent_id = $2
       AND (payment_status = 'pending' OR (payment_status = 'failed' AND $3 = 'canceled'))";

/// `$1` order (a lock suffix follows): what a refund at the provider changes.
pub(in crate::store) const ORDER_FOR_REFUND: &str = "SELECT event_id, status,
        payment_intent_id, total_minor, refunded_minor FROM orders WHERE id = $1";

/// `$1` order, `$2` now: refunded by the provider while paid (the seats follow).
pub(in crate::store) const REFUNDED_AT_PROVIDER: &str = "UPDATE orders SET status = 'cancelled',
        paid_at = NULL, updated_at = $2, payment_status = 'refunded',
        refunded_minor = total_minor, payment_updated_at = $2
     WHERE id = $1 AND status = 'paid'";

/// `$1` order, `$2` given back, `$3` all of it, `$4` now: what the provider gave back of an
/// order that is not paid, or part of one that is (never less than before: a late partial
/// refund's event changes nothing).
pub(in crate::store) const PARTLY_REFUNDED: &str = "UPDATE orders SET
        refunded_minor = CASE WHEN $2 > refunded_minor THEN $2 ELSE refunded_minor END,
        payment_status = CASE WHEN $3 AND status IN ('expired', 'cancelled')
                              THEN 'refunded' ELSE payment_status END,
        payment_updated_at = $4, updated_at = $4
     WHERE id = $1 AND ($2 > refunded_minor
                        OR ($3 AND status IN ('expired', 'cancelled')
                            AND payment_status <> 'refunded'))";

/// `$1` intent, `$2` now: an owed refund made (by us, or at the provider's dashboard).
pub(in crate::store) const REFUND_DONE: &str = "UPDATE payment_refunds SET state = 'done',
        tried_at = $2
     WHERE intent_id = $1 AND state = 'owed' AND reason <> 'organiser'
     RETURNING order_id, amount_minor";

/// `$1` order, `$2` intent, `$3` now: the order, not paid, has its money back (unless the
/// provider's `charge.refunded` said so first); its event and what it cost.
pub(in crate::store) const PAYMENT_REFUNDED: &str = "UPDATE orders SET
        payment_status = 'refunded', refunded_minor = total_minor, payment_updated_at = $3,
        updated_at = $3
     WHERE id = $1 AND payment_intent_id = $2 AND status IN ('expired', 'cancelled')
       AND payment_status <> 'refunded'
     RETURNING event_id";

/// `$1` order, `$2` its event's creator: what is left to give back of it, paid through the
/// provider, and what was charged.
pub(in crate::store) const ORGANISER_REFUNDABLE: &str =
    "SELECT o.payment_intent_id, o.total_minor - o.refunded_minor, o.total_minor
     FROM orders o JOIN events e ON e.id = o.event_id
     WHERE o.id = $1 AND e.creator_id = $2 AND o.status = 'paid'
       AND o.payment_provider = 'stripe' AND o.payment_intent_id IS NOT NULL
       AND o.total_minor > o.refunded_minor";

pub(in crate::store) const DROP_REFUND: &str =
    "DELETE FROM payment_refunds WHERE intent_id = $1 AND state = 'owed'";

/// `$1` now, `$2` unheard since, `$3` limit (a lock suffix closes the inner select).
pub(in crate::store) const DUE_INTENTS: (&str, &str) = (
    "UPDATE payment_intents SET heard_at = $1 WHERE id IN (
        SELECT id FROM payment_intents WHERE status IN ('open', 'failed') AND heard_at < $2
        ORDER BY heard_at LIMIT $3",
    ") RETURNING id, order_id",
);

/// `$1` order, `$2` now: when its hold ended, if it did or the order left `reserved`.
pub(in crate::store) const HOLD_ENDED: &str =
    "SELECT CASE WHEN status <> 'reserved' THEN updated_at
        WHEN expires_at <= $2 THEN expires_at END
     FROM orders WHERE id = $1";

/// `$1` now, `$2` untried since, `$3` limit (a lock suffix closes the inner select).
pub(in crate::store) const OWED_REFUNDS: (&str, &str) = (
    "UPDATE payment_refunds SET tried_at = $1 WHERE intent_id IN (
        SELECT intent_id FROM payment_refunds WHERE state = 'owed' AND tried_at < $2
        ORDER BY tried_at LIMIT $3",
    ") RETURNING intent_id, order_id, amount_minor, charged_minor, reason",
);

/// `$1` event id, `$2` outcome, `$3` now: a webhook event claimed (nothing when seen before).
pub(in crate::store) const CLAIM_WEBHOOK_EVENT: &str =
    "INSERT INTO stripe_events (id, outcome, received_at) VALUES ($1, $2, $3)
     ON CONFLICT (id) DO NOTHING";

pub(in crate::store) const WEBHOOK_OUTCOME: &str =
    "UPDATE stripe_events SET outcome = $2 WHERE id = $1";

pub(in crate::store) const OPEN_INTENTS: &str =
    "SELECT count(*) FROM payment_intents WHERE status = 'open'";

pub(in crate::store) const PURGE_WEBHOOK_EVENTS: &str =
    "DELETE FROM stripe_events WHERE received_at < $1";

/// [`crate::store::PaymentStore`] for `$store`, whose database is `$db`: it has
/// `write_tx(&self) -> StoreResult<(Tx, now)>` (a write transaction that derefs to its
/// connection, with `commit` and `rollback`), a pool `$reader` for reads, and beside it
/// `order_on(&mut Connection, Uuid)` reading one order.
macro_rules! payment_store {
    ($store:ty, $db:ty, $reader:ident) => {
        mod payments {
            use super::*;
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use uuid::Uuid;
            use $crate::domain::{Change, OrderDetails, TicketStatus, WriteOutcome};
            use $crate::store::payments::*;
            use $crate::store::sql::{self, Dialect, OrderMoved, PaymentOrderRow, StoredTime};
            use $crate::store::{HeldKey, StoreError, StoreResult};

            type Time = <$db as Dialect>::Time;
            type Conn = <$db as sqlx::Database>::Connection;

            /// `statement` taking the row lock it needs (PostgreSQL; SQLite's write
            /// transaction holds the database).
            fn locked(statement: &str) -> String {
                format!("{statement}{}", <$db as Dialect>::LOCK_ROW)
            }

            /// Claims webhook event `event_id` in the caller's transaction: `false` when it
            /// was seen before.
            async fn claim_event(
                conn: &mut Conn,
                event_id: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let claimed = sqlx::query(sql::CLAIM_WEBHOOK_EVENT)
                    .bind(event_id)
                    .bind("applied")
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                Ok(claimed.rows_affected() == 1)
            }

            async fn owe(
                conn: &mut Conn,
                refund: OwedRefund,
                now: DateTime<Utc>,
            ) -> StoreResult<Settlement> {
                sqlx::query(sql::OWE_REFUND)
                    .bind(&refund.intent_id)
                    .bind(refund.order_id)
                    .bind(refund.amount_minor)
                    .bind(refund.charged_minor)
                    .bind(refund.reason.as_str())
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                Ok(Settlement::RefundOwed(refund))
            }

            /// Pays the order through `intent_id`, whatever its status was (the caller
            /// decided); its tickets and counters follow.
            async fn pay_through(
                conn: &mut Conn,
                order_id: Uuid,
                intent_id: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let (event_id, total_minor, offer): (Uuid, i64, Option<Uuid>) =
                    sqlx::query_as(sql::PAY_THROUGH_INTENT)
                        .bind(order_id)
                        .bind(intent_id)
                        .bind(Time::from(now))
                        .fetch_one(&mut *conn)
                        .await?;
                let order = sql::MovedOrder {
                    id: order_id,
                    event_id,
                    offer,
                };
                sql::order_moved::<$db>(conn, order, total_minor, OrderMoved::Paid, now).await
            }

            /// Whether an order whose hold ended may still be paid: the event has not started,
            /// its tiers are on sale, the buyer's cap per person holds and (unless `held`: the
            /// order was not released yet) the seats are there, which it then takes again.
            async fn retake(
                conn: &mut Conn,
                order: &PaymentOrderRow,
                order_id: Uuid,
                held: bool,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let event: Option<(bool, i64, Option<i32>)> =
                    sqlx::query_as(&locked(sql::EVENT_FOR_RETAKE))
                        .bind(order.event_id)
                        .bind(Time::from(now))
                        .fetch_optional(&mut *conn)
                        .await?;
                let Some((to_start, seats_left, cap)) = event else {
                    return Ok(false);
                };
                let (seats, lines): (i64, i64) = sqlx::query_as(sql::ORDER_SIZE)
                    .bind(order_id)
                    .fetch_one(&mut *conn)
                    .await?;
                if !to_start || (!held && seats > seats_left) {
                    return Ok(false);
                }
                let lines_check = if held {
                    sql::LINES_ON_SALE
                } else {
                    sql::LINES_THAT_FIT
                };
                let fitting: i64 = sqlx::query_scalar(lines_check)
                    .bind(order_id)
                    .bind(Time::from(now))
                    .fetch_one(&mut *conn)
                    .await?;
                if fitting != lines {
                    return Ok(false);
                }
                if let Some(cap) = cap {
                    // Its own tickets are not counted: their hold ended.
                    let others: i64 = sqlx::query_scalar(sql::BUYER_HOLDS)
                        .bind(order.user_id)
                        .bind(order.event_id)
                        .bind(Time::from(now))
                        .fetch_one(&mut *conn)
                        .await?;
                    if others + seats > i64::from(cap) {
                        return Ok(false);
                    }
                }
                if held {
                    return Ok(true);
                }
                sqlx::query(sql::TAKE_EVENT_SEATS)
                    .bind(order.event_id)
                    .bind(seats)
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(sql::TAKE_TIER_SEATS)
                    .bind(order_id)
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                Ok(true)
            }

            /// The success rule, in the caller's transaction (PAYMENTS.md § Success rule).
            async fn settle(
                conn: &mut Conn,
                intent_id: &str,
                amount_minor: i64,
                currency: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Settlement> {
                let intent: Option<(Uuid, i64, String, String)> =
                    sqlx::query_as(&locked(sql::INTENT))
                        .bind(intent_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                let Some((order_id, amount, made_in, status)) = intent else {
                    return Ok(Settlement::Ignored);
                };
                if status == "succeeded" || amount != amount_minor || made_in != currency {
                    return Ok(Settlement::Ignored);
                }
                sqlx::query(sql::INTENT_SUCCEEDED)
                    .bind(intent_id)
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                let refund = |reason| OwedRefund {
                    intent_id: intent_id.to_owned(),
                    order_id,
                    amount_minor,
                    charged_minor: amount_minor,
                    reason,
                };
                let order: Option<PaymentOrderRow> =
                    sqlx::query_as(&locked(sql::ORDER_FOR_PAYMENT))
                        .bind(order_id)
                        .bind(Time::from(now))
                        .fetch_optional(&mut *conn)
                        .await?;
                // Its event was deleted: nothing to give for the money.
                let Some(order) = order else {
                    return owe(conn, refund(RefundReason::Extra), now).await;
                };
                let status = sql::parse_status(&order.status)?;
                let current = order.payment_intent_id.as_deref() == Some(intent_id);
                match status {
                    TicketStatus::Reserved if !order.past_hold => {
                        pay_through(conn, order_id, intent_id, now).await?;
                        Ok(Settlement::Paid {
                            order: read(conn, order_id).await?,
                            late: false,
                        })
                    }
                    TicketStatus::Reserved | TicketStatus::Expired => {
                        // Reserved past its hold: not released yet, its seats still its own.
                        let held = status == TicketStatus::Reserved;
                        if retake(conn, &order, order_id, held, now).await? {
                            pay_through(conn, order_id, intent_id, now).await?;
                            return Ok(Settlement::Paid {
                                order: read(conn, order_id).await?,
                                late: true,
                            });
                        }
                        if held {
                            sqlx::query(sql::EXPIRE_ORDER)
                                .bind(order_id)
                                .bind(Time::from(now))
                                .execute(&mut *conn)
                                .await?;
                            let expired = OrderMoved::Expired;
                            let moved = sql::MovedOrder {
                                id: order_id,
                                event_id: order.event_id,
                                offer: order.waitlist_entry_id,
                            };
                            sql::order_moved::<$db>(conn, moved, order.total_minor, expired, now)
                                .await?;
                        }
                        taken_through(conn, order_id, intent_id, now).await?;
                        owe(conn, refund(RefundReason::Late), now).await
                    }
                    TicketStatus::Cancelled if current => {
                        taken_through(conn, order_id, intent_id, now).await?;
                        owe(conn, refund(RefundReason::Extra), now).await
                    }
                    // Paid (through another intent), or cancelled after another one failed.
                    _ => owe(conn, refund(RefundReason::Extra), now).await,
                }
            }

            async fn taken_through(
                conn: &mut Conn,
                order_id: Uuid,
                intent_id: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(sql::TAKEN_THROUGH_INTENT)
                    .bind(order_id)
                    .bind(intent_id)
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            async fn read(conn: &mut Conn, order_id: Uuid) -> StoreResult<Box<OrderDetails>> {
                let order = order_on(conn, order_id).await?;
                order.map(Box::new).ok_or_else(|| {
                    StoreError::Corrupt(format!("order {order_id} vanished while locked"))
                })
            }

            /// A failed or cancelled attempt: the intent closes; the order's payment fails
            /// when it was its current, pending one.
            async fn failed(
                conn: &mut Conn,
                intent_id: &str,
                failure_code: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let state = if failure_code == "canceled" {
                    "canceled"
                } else {
                    "failed"
                };
                let closed: Option<Uuid> = sqlx::query_scalar(sql::INTENT_CLOSED)
                    .bind(intent_id)
                    .bind(state)
                    .bind(Time::from(now))
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(order_id) = closed else {
                    return Ok(false);
                };
                sqlx::query(sql::PAYMENT_FAILED)
                    .bind(order_id)
                    .bind(intent_id)
                    .bind(failure_code)
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                Ok(true)
            }

            /// Money given back at the provider (its dashboard, or a refund of ours).
            async fn refunded(
                conn: &mut Conn,
                intent_id: &str,
                refunded_minor: i64,
                fully: bool,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let intent: Option<(Uuid, i64, String, String)> =
                    sqlx::query_as(&locked(sql::INTENT))
                        .bind(intent_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                let Some((order_id, ..)) = intent else {
                    return Ok(false);
                };
                // A refund of ours that the provider made (told before our own call returned):
                // late and extra refunds give back everything.
                let ours = fully && made(conn, intent_id, now).await?;
                let order: Option<(Uuid, String, Option<String>, i64, i64)> =
                    sqlx::query_as(&locked(sql::ORDER_FOR_REFUND))
                        .bind(order_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                let Some((event_id, status, current, total_minor, before)) = order else {
                    return Ok(ours);
                };
                if current.as_deref() != Some(intent_id) {
                    return Ok(ours);
                }
                let status = sql::parse_status(&status)?;
                if fully && status == TicketStatus::Paid {
                    sqlx::query(sql::REFUNDED_AT_PROVIDER)
                        .bind(order_id)
                        .bind(Time::from(now))
                        .execute(&mut *conn)
                        .await?;
                    let moved = OrderMoved::Refunded;
                    let rest = total_minor - before;
                    let order = sql::MovedOrder {
                        id: order_id,
                        event_id,
                        offer: None,
                    };
                    sql::order_moved::<$db>(conn, order, rest, moved, now).await?;
                    return Ok(true);
                }
                let now_refunded = refunded_minor.clamp(0, total_minor);
                let changed = sqlx::query(sql::PARTLY_REFUNDED)
                    .bind(order_id)
                    .bind(now_refunded)
                    .bind(fully)
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                if changed.rows_affected() > 0 && now_refunded > before {
                    let more = now_refunded - before;
                    sql::count_refund::<$db>(conn, event_id, more, now).await?;
                }
                Ok(ours || changed.rows_affected() > 0)
            }

            /// Marks the owed late or extra refund of `intent_id` made; `true` if there was one.
            async fn made(
                conn: &mut Conn,
                intent_id: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let done: Option<(Uuid, i64)> = sqlx::query_as(sql::REFUND_DONE)
                    .bind(intent_id)
                    .bind(Time::from(now))
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some((order_id, amount_minor)) = done else {
                    return Ok(false);
                };
                // The order's own payment given back (not one it does not keep): counted on its
                // event, as every refund of an order's payment is.
                let refunded: Option<Uuid> = sqlx::query_scalar(sql::PAYMENT_REFUNDED)
                    .bind(order_id)
                    .bind(intent_id)
                    .bind(Time::from(now))
                    .fetch_optional(&mut *conn)
                    .await?;
                if let Some(event_id) = refunded {
                    sql::count_refund::<$db>(conn, event_id, amount_minor, now).await?;
                }
                Ok(true)
            }

            #[async_trait]
            impl PaymentStore for $store {
                async fn record_intent(
                    &self,
                    start: &IntentStart<'_>,
                    client_secret: &str,
                    key: Option<&HeldKey>,
                ) -> StoreResult<IntentRecorded> {
                    let (mut tx, now) = self.write_tx().await?;
                    let window = chrono::Duration::from_std(start.window).unwrap_or_default();
                    let extended: Option<Time> = sqlx::query_scalar(sql::RECORD_INTENT)
                        .bind(start.order_id)
                        .bind(start.user_id)
                        .bind(start.intent_id)
                        .bind(start.attempt)
                        .bind(Time::from(now))
                        .bind(Time::from(now + window))
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(held_until) = extended else {
                        let order = order_on(&mut tx, start.order_id).await?;
                        tx.rollback().await?;
                        let Some(order) = order else {
                            return Ok(IntentRecorded::Refused(Change::NotFound));
                        };
                        let o = &order.order;
                        let live = o.status == TicketStatus::Reserved && o.expires_at > now;
                        if o.user_id == start.user_id && live && o.payment.attempts >= start.attempt
                        {
                            return Ok(IntentRecorded::Raced(Box::new(order)));
                        }
                        let past = o.expires_at <= now;
                        let refusal = Change::refusal(o.user_id, start.user_id, o.status, past);
                        return Ok(IntentRecorded::Refused(refusal));
                    };
                    sqlx::query(sql::HOLD_TICKETS_UNTIL)
                        .bind(start.order_id)
                        .bind(held_until)
                        .execute(&mut *tx)
                        .await?;
                    // An offer's hold is its order's.
                    sqlx::query(sql::OFFER_HELD_UNTIL)
                        .bind(start.order_id)
                        .bind(held_until)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(sql::INSERT_INTENT)
                        .bind(start.intent_id)
                        .bind(start.order_id)
                        .bind(start.attempt)
                        .bind(start.amount_minor)
                        .bind(start.currency)
                        .bind(Time::from(now))
                        .execute(&mut *tx)
                        .await?;
                    let order = read(&mut tx, start.order_id).await?;
                    if let Some(key) = key {
                        let started = WriteOutcome::PaymentStarted {
                            order: order.clone(),
                            client_secret: client_secret.to_owned(),
                        };
                        if !sql::record_outcome_on::<$db>(&mut tx, key, &started).await? {
                            return Err(StoreError::ClaimLost);
                        }
                    }
                    tx.commit().await?;
                    Ok(IntentRecorded::Recorded(order))
                }

                async fn intent_news(
                    &self,
                    intent_id: &str,
                    news: IntentNews<'_>,
                    event_id: Option<&str>,
                    key: Option<&HeldKey>,
                ) -> StoreResult<Heard<NewsApplied>> {
                    let (mut tx, now) = self.write_tx().await?;
                    if let Some(event_id) = event_id {
                        if !claim_event(&mut tx, event_id, now).await? {
                            tx.rollback().await?;
                            return Ok(Heard::Duplicate);
                        }
                    }
                    let applied = match news {
                        IntentNews::Succeeded {
                            amount_minor,
                            currency,
                        } => match settle(&mut tx, intent_id, amount_minor, currency, now).await? {
                            Settlement::Ignored => NewsApplied::Ignored,
                            settled => NewsApplied::Applied(Some(settled)),
                        },
                        IntentNews::Failed { failure_code } => {
                            if failed(&mut tx, intent_id, failure_code, now).await? {
                                NewsApplied::Applied(None)
                            } else {
                                NewsApplied::Ignored
                            }
                        }
                        IntentNews::Refunded {
                            refunded_minor,
                            fully,
                        } => {
                            if refunded(&mut tx, intent_id, refunded_minor, fully, now).await? {
                                NewsApplied::Applied(None)
                            } else {
                                NewsApplied::Ignored
                            }
                        }
                    };
                    if let (Some(event_id), NewsApplied::Ignored) = (event_id, &applied) {
                        sqlx::query(sql::WEBHOOK_OUTCOME)
                            .bind(event_id)
                            .bind("ignored")
                            .execute(&mut *tx)
                            .await?;
                    }
                    if let (Some(key), NewsApplied::Applied(Some(Settlement::Paid { order, .. }))) =
                        (key, &applied)
                    {
                        let paid = WriteOutcome::Order(order.clone());
                        if !sql::record_outcome_on::<$db>(&mut tx, key, &paid).await? {
                            return Err(StoreError::ClaimLost);
                        }
                    }
                    tx.commit().await?;
                    Ok(Heard::New(applied))
                }

                async fn webhook_ignored(&self, event_id: &str) -> StoreResult<Heard<()>> {
                    let (mut tx, now) = self.write_tx().await?;
                    let claimed = sqlx::query(sql::CLAIM_WEBHOOK_EVENT)
                        .bind(event_id)
                        .bind("ignored")
                        .bind(Time::from(now))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(if claimed.rows_affected() == 1 {
                        Heard::New(())
                    } else {
                        Heard::Duplicate
                    })
                }

                async fn purge_webhook_events(
                    &self,
                    older_than: DateTime<Utc>,
                ) -> StoreResult<u64> {
                    let (mut tx, _) = self.write_tx().await?;
                    let purged = sqlx::query(sql::PURGE_WEBHOOK_EVENTS)
                        .bind(Time::from(older_than))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(purged.rows_affected())
                }

                async fn refund_made(&self, intent_id: &str) -> StoreResult<()> {
                    let (mut tx, now) = self.write_tx().await?;
                    made(&mut tx, intent_id, now).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn owe_organiser_refund(
                    &self,
                    order_id: Uuid,
                    organiser: Uuid,
                ) -> StoreResult<Option<(OwedRefund, bool)>> {
                    let (mut tx, now) = self.write_tx().await?;
                    let refundable: Option<(String, i64, i64)> =
                        sqlx::query_as(sql::ORGANISER_REFUNDABLE)
                            .bind(order_id)
                            .bind(organiser)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let Some((intent_id, amount_minor, charged_minor)) = refundable else {
                        tx.rollback().await?;
                        return Ok(None);
                    };
                    let refund = OwedRefund {
                        intent_id,
                        order_id,
                        amount_minor,
                        charged_minor,
                        reason: RefundReason::Organiser,
                    };
                    let owed = sqlx::query(sql::OWE_REFUND)
                        .bind(&refund.intent_id)
                        .bind(order_id)
                        .bind(amount_minor)
                        .bind(charged_minor)
                        .bind(refund.reason.as_str())
                        .bind(Time::from(now))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(Some((refund, owed.rows_affected() == 1)))
                }

                async fn drop_refund(&self, intent_id: &str) -> StoreResult<()> {
                    let (mut tx, _) = self.write_tx().await?;
                    sqlx::query(sql::DROP_REFUND)
                        .bind(intent_id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn due_intents(
                    &self,
                    unheard_for: std::time::Duration,
                    limit: i64,
                ) -> StoreResult<Vec<DueIntent>> {
                    let (mut tx, now) = self.write_tx().await?;
                    let since = now - chrono::Duration::from_std(unheard_for).unwrap_or_default();
                    let (head, tail) = sql::DUE_INTENTS;
                    let statement = format!("{head}{}{tail}", <$db as Dialect>::SKIP_LOCKED);
                    let due: Vec<(String, Uuid)> = sqlx::query_as(&statement)
                        .bind(Time::from(now))
                        .bind(Time::from(since))
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut intents = Vec::with_capacity(due.len());
                    for (intent_id, order_id) in due {
                        let ended: Option<Option<Time>> = sqlx::query_scalar(sql::HOLD_ENDED)
                            .bind(order_id)
                            .bind(Time::from(now))
                            .fetch_optional(&mut *tx)
                            .await?;
                        let hold_ended_at = match ended.flatten() {
                            Some(at) => Some(at.into_utc()?),
                            // No order any more: its hold is long over.
                            None if ended.is_none() => Some(DateTime::<Utc>::MIN_UTC),
                            None => None,
                        };
                        intents.push(DueIntent {
                            intent_id,
                            order_id,
                            hold_ended_at,
                        });
                    }
                    tx.commit().await?;
                    Ok(intents)
                }

                async fn owed_refunds(
                    &self,
                    untried_for: std::time::Duration,
                    limit: i64,
                ) -> StoreResult<Vec<OwedRefund>> {
                    let (mut tx, now) = self.write_tx().await?;
                    let since = now - chrono::Duration::from_std(untried_for).unwrap_or_default();
                    let (head, tail) = sql::OWED_REFUNDS;
                    let statement = format!("{head}{}{tail}", <$db as Dialect>::SKIP_LOCKED);
                    let owed: Vec<(String, Uuid, i64, i64, String)> = sqlx::query_as(&statement)
                        .bind(Time::from(now))
                        .bind(Time::from(since))
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    owed.into_iter()
                        .map(
                            |(intent_id, order_id, amount_minor, charged_minor, reason)| {
                                let reason = RefundReason::parse(&reason).ok_or_else(|| {
                                    StoreError::Corrupt(format!("refund reason {reason:?}"))
                                })?;
                                Ok(OwedRefund {
                                    intent_id,
                                    order_id,
                                    amount_minor,
                                    charged_minor,
                                    reason,
                                })
                            },
                        )
                        .collect()
                }

                async fn open_intents(&self) -> StoreResult<i64> {
                    let open = sqlx::query_scalar(sql::OPEN_INTENTS)
                        .fetch_one(&self.$reader)
                        .await?;
                    Ok(open)
                }

                async fn record_answer(
                    &self,
                    key: &HeldKey,
                    outcome: &WriteOutcome,
                ) -> StoreResult<()> {
                    let (mut tx, _) = self.write_tx().await?;
                    if !sql::record_outcome_on::<$db>(&mut tx, key, outcome).await? {
                        return Err(StoreError::ClaimLost);
                    }
                    tx.commit().await?;
                    Ok(())
                }
            }
        }
    };
}
