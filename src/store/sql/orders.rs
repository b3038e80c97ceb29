//! Orders and tickets: their columns, statements and rows, a buyer's filter, how an order is
//! paid or cancelled (a cancellation's seats go through the seat ledger), and the answers an
//! order gets from a glance at its event.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, FromRow, QueryBuilder, Type};
use uuid::Uuid;

use super::{Dialect, StoredTime, parse_status};
use crate::domain::{
    Change, EventSummary, Order, OrderChange, OrderDetails, OrderRefusal, Payment, PaymentProvider,
    PaymentStatus, PlannedLine, SeatsBack, SeatsBackCause, Shortage, Ticket, TicketDetails,
    TicketOrder, TicketStatus, TierSummary, UserSummary,
};
use crate::store::{OrderAction, StoreError, ledger};

/// The columns of [`EventSummaryColumns`], from the event `e`.
macro_rules! event_summary_columns {
    () => {
        "e.title AS event_title, e.start_time AS event_start_time, \
         e.end_time AS event_end_time, e.venue_name AS event_venue_name, \
         e.city AS event_city, e.state AS event_state"
    };
}

/// A ticket row (`t`) with its tier as its order recorded it (`oi`) and its user (`u`) and
/// event (`e`) summaries, joined by `ticket_joins`.
macro_rules! ticket_columns {
    () => {
        concat!(
            "t.id, t.user_id, t.event_id, t.order_id, t.tier_id, t.status, t.expires_at, \
             t.paid_at, t.created_at, t.updated_at, oi.tier_name, \
             oi.unit_price_minor AS tier_price_minor, u.name AS user_name, \
             u.email AS user_email, ",
            event_summary_columns!()
        )
    };
}

macro_rules! ticket_joins {
    () => {
        " JOIN order_items oi ON oi.order_id = t.order_id AND oi.tier_id = t.tier_id \
          JOIN users u ON u.id = t.user_id JOIN events e ON e.id = t.event_id "
    };
}

pub(in crate::store) const FIND_TICKET: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    " FROM tickets t",
    ticket_joins!(),
    "WHERE t.id = $1"
);

pub(in crate::store) const SELECT_TICKETS: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    " FROM tickets t",
    ticket_joins!()
);

pub(in crate::store) const TICKETS_ORDER: &str = " ORDER BY t.created_at DESC, t.id DESC";

/// Whose order, in which status, and whether `$2` (now) is past its deadline.
const ORDER_STATE: &str = "SELECT user_id, status, expires_at <= $2 FROM orders WHERE id = $1";

/// Who may refund an order (its event's creator), its status, and whether `$2` (now) is past
/// its hold (a lapsed reservation is refused as expired, as every read shows it).
const REFUND_STATE: &str = "SELECT e.creator_id, o.status, o.expires_at <= $2
     FROM orders o JOIN events e ON e.id = o.event_id WHERE o.id = $1";

/// An order (`o`) with its event's summary (`e`).
macro_rules! order_columns {
    () => {
        concat!(
            "o.id, o.user_id, o.event_id, o.status, o.currency, o.total_minor, o.expires_at, \
             o.paid_at, o.created_at, o.updated_at, o.payment_provider, o.payment_status, \
             o.payment_intent_id, o.refunded_minor, o.payment_failure_code, \
             o.payment_updated_at, o.payment_attempts, o.waitlist_entry_id, ",
            event_summary_columns!(),
            " FROM orders o JOIN events e ON e.id = o.event_id"
        )
    };
}

pub(in crate::store) const FIND_ORDER: &str =
    concat!("SELECT ", order_columns!(), " WHERE o.id = $1");

pub(in crate::store) const SELECT_ORDERS: &str = concat!("SELECT ", order_columns!());

pub(in crate::store) const ORDERS_ORDER: &str = " ORDER BY o.created_at DESC, o.id DESC";

/// The items of some orders (the caller appends the `order_id` condition).
pub(in crate::store) const SELECT_ORDER_ITEMS: &str =
    "SELECT order_id, tier_id, tier_name, quantity, unit_price_minor FROM order_items";

pub(in crate::store) const ORDER_ITEMS_ORDER: &str = " ORDER BY order_id, line";

/// The tickets of some orders (the caller appends the `t.order_id` condition).
pub(in crate::store) const SELECT_ORDER_TICKETS: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    " FROM tickets t",
    ticket_joins!()
);

pub(in crate::store) const ORDER_TICKETS_ORDER: &str = " ORDER BY t.order_id, t.id";

/// `$1` ticket: its order, the order's owner and how many tickets the order holds.
pub(in crate::store) const TICKET_ORDER: &str = "SELECT t.order_id, o.user_id,
        (SELECT count(*) FROM tickets n WHERE n.order_id = t.order_id) AS tickets
     FROM tickets t JOIN orders o ON o.id = t.order_id WHERE t.id = $1";

/// A [`TICKET_ORDER`] row.
pub(in crate::store) fn ticket_order(
    (order_id, user_id, tickets): (Uuid, Uuid, i64),
) -> Result<TicketOrder, StoreError> {
    Ok(TicketOrder {
        order_id,
        user_id,
        tickets,
    })
}

/// `$1` order, `$2` status, `$3` now: the order's tickets take its new status.
/// `$1` order, just paid: its tiers count its tickets as paid, and their revenue at the order's
/// prices. Only tier rows are locked (no event row after them), so it keeps the lock order.
const COUNT_PAYMENT: &str = "UPDATE ticket_tiers SET paid = ticket_tiers.paid + oi.quantity,
        revenue_minor = ticket_tiers.revenue_minor + oi.quantity * oi.unit_price_minor
     FROM order_items oi WHERE oi.order_id = $1 AND ticket_tiers.id = oi.tier_id";

/// `$1` order, just refunded: what [`COUNT_PAYMENT`] counted comes off its tiers.
const UNCOUNT_PAYMENT: &str = "UPDATE ticket_tiers SET paid = ticket_tiers.paid - oi.quantity,
        revenue_minor = ticket_tiers.revenue_minor - oi.quantity * oi.unit_price_minor
     FROM order_items oi WHERE oi.order_id = $1 AND ticket_tiers.id = oi.tier_id";

/// `$1` order (a lock suffix follows): what was given back of it so far.
const REFUNDED_SO_FAR: &str = "SELECT refunded_minor FROM orders WHERE id = $1";

/// `$1` event, `$2` amount, `$3` now: a refund's money counted on its event (for its stats).
const COUNT_REFUND: &str =
    "UPDATE events SET refunded_minor = refunded_minor + $2, updated_at = $3 WHERE id = $1";

/// `$1` order, `$2` now: the refund its organiser asked of the provider, owed until the
/// provider made it, is done.
const ORGANISER_REFUND_DONE: &str = "UPDATE payment_refunds SET state = 'done', tried_at = $2
     WHERE order_id = $1 AND reason = 'organiser' AND state = 'owed'";

/// `$1` order, `$2` status, `$3` now: its tickets moved, with `lock_row` the backend's row
/// lock. The tickets are locked first, in id order, as a transaction of scans locks them (an
/// `UPDATE` alone locks them in the order it finds them, and could deadlock with one).
fn set_order_tickets_status(lock_row: &str) -> String {
    format!(
        "UPDATE tickets SET status = $2, updated_at = $3,
             paid_at = CASE WHEN $2 = 'paid' THEN $3 WHEN $2 = 'cancelled' THEN NULL
                       ELSE paid_at END
         WHERE id IN (SELECT id FROM tickets WHERE order_id = $1 ORDER BY id{lock_row})"
    )
}

/// `$1` order: the seats it holds, per event and tier.
const ORDER_SEATS: &str =
    "SELECT event_id, tier_id, CAST(quantity AS BIGINT) FROM order_items WHERE order_id = $1";

/// `$1` event, `$2` now: whether it started, is sold out, and has due holds to release.
pub(in crate::store) const SALE_AT_A_GLANCE: &str =
    "SELECT start_time <= $2, tickets_sold >= total_tickets,
        EXISTS (SELECT 1 FROM orders
                WHERE event_id = $1 AND status = 'reserved' AND expires_at <= $2)
     FROM events WHERE id = $1";

/// An order refused from [`SALE_AT_A_GLANCE`] alone, without a write or a lock: the event is
/// missing, started, or (when `sold_out_answers`) sold out with no due hold to release. `None`
/// when only the write path can tell (seats left, due holds, or a rule on a named tier that
/// must come first).
pub(in crate::store) fn refusal_at_a_glance(
    state: Option<(bool, bool, bool)>,
    sold_out_answers: bool,
) -> Option<OrderRefusal> {
    match state {
        None => Some(OrderRefusal::EventNotFound),
        Some((true, _, _)) => Some(OrderRefusal::EventStarted),
        Some((false, true, false)) if sold_out_answers => Some(OrderRefusal::NotEnough {
            short: Shortage::Event,
            left: 0,
        }),
        Some(_) => None,
    }
}

/// An event's summary as [`event_summary_columns!`] reads it, beside the row it belongs to.
#[derive(FromRow)]
pub(in crate::store) struct EventSummaryColumns<T> {
    event_title: String,
    event_start_time: T,
    event_end_time: T,
    event_venue_name: String,
    event_city: String,
    event_state: String,
}

impl<T: StoredTime> EventSummaryColumns<T> {
    pub(in crate::store) fn into_summary(self, id: Uuid) -> Result<EventSummary, StoreError> {
        Ok(EventSummary {
            id,
            title: self.event_title,
            start_time: self.event_start_time.into_utc()?,
            end_time: self.event_end_time.into_utc()?,
            venue_name: self.event_venue_name,
            city: self.event_city,
            state: self.event_state,
        })
    }
}

#[derive(FromRow)]
pub(in crate::store) struct TicketRow<T> {
    id: Uuid,
    user_id: Uuid,
    event_id: Uuid,
    order_id: Uuid,
    tier_id: Uuid,
    tier_name: String,
    tier_price_minor: i64,
    status: String,
    expires_at: T,
    paid_at: Option<T>,
    created_at: T,
    updated_at: T,
    user_name: String,
    user_email: String,
    #[sqlx(flatten)]
    event: EventSummaryColumns<T>,
}

impl<T: StoredTime> TicketRow<T> {
    pub(in crate::store) fn into_details(self) -> Result<TicketDetails, StoreError> {
        Ok(TicketDetails {
            ticket: Ticket {
                id: self.id,
                user_id: self.user_id,
                event_id: self.event_id,
                order_id: self.order_id,
                status: parse_status(&self.status)?,
                expires_at: self.expires_at.into_utc()?,
                paid_at: self.paid_at.map(StoredTime::into_utc).transpose()?,
                created_at: self.created_at.into_utc()?,
                updated_at: self.updated_at.into_utc()?,
            },
            tier: TierSummary {
                id: self.tier_id,
                name: self.tier_name,
                price_minor: self.tier_price_minor,
            },
            user: UserSummary {
                id: self.user_id,
                name: self.user_name,
                email: self.user_email,
            },
            event: self.event.into_summary(self.event_id)?,
        })
    }
}

/// What a buyer's page lists: their tickets, or their orders.
#[derive(Clone, Copy)]
pub(in crate::store) enum BuyerRows {
    Tickets,
    Orders,
}

impl BuyerRows {
    fn table(self) -> &'static str {
        match self {
            BuyerRows::Tickets => "tickets",
            BuyerRows::Orders => "orders",
        }
    }

    /// The table's alias in [`Self::select`].
    fn alias(self) -> &'static str {
        match self {
            BuyerRows::Tickets => "t",
            BuyerRows::Orders => "o",
        }
    }

    pub(in crate::store) fn select(self) -> &'static str {
        match self {
            BuyerRows::Tickets => SELECT_TICKETS,
            BuyerRows::Orders => SELECT_ORDERS,
        }
    }

    /// Newest first.
    pub(in crate::store) fn order(self) -> &'static str {
        match self {
            BuyerRows::Tickets => TICKETS_ORDER,
            BuyerRows::Orders => ORDERS_ORDER,
        }
    }
}

/// The `WHERE` clause of a buyer's tickets or orders: theirs, in the effective `status` (a
/// reserved hold past its deadline counts as expired).
pub(in crate::store) fn push_buyer_filter<'a, DB: Dialect>(
    builder: &mut QueryBuilder<'a, DB>,
    rows: BuyerRows,
    user_id: Uuid,
    status: Option<TicketStatus>,
    now: DateTime<Utc>,
) where
    Uuid: Encode<'a, DB> + Type<DB>,
{
    let alias = rows.alias();
    builder
        .push(format!(" WHERE {alias}.user_id = "))
        .push_bind(user_id);
    let now = DB::Time::from(now);
    match status {
        None => {}
        Some(TicketStatus::Reserved) => {
            builder
                .push(format!(
                    " AND {alias}.status = 'reserved' AND {alias}.expires_at > "
                ))
                .push_bind(now);
        }
        Some(TicketStatus::Expired) => {
            builder
                .push(format!(
                    " AND ({alias}.status = 'expired' OR ({alias}.status = 'reserved' AND {alias}.expires_at <= "
                ))
                .push_bind(now)
                .push("))");
        }
        Some(TicketStatus::Paid) => {
            builder.push(format!(" AND {alias}.status = 'paid'"));
        }
        Some(TicketStatus::Cancelled) => {
            builder.push(format!(" AND {alias}.status = 'cancelled'"));
        }
    }
}

/// The query counting a buyer's tickets or orders in the effective `status`: the live ones
/// (reserved or paid) counted through their partial indexes, the cancelled and expired ones
/// read from `buyer_history` — so the count costs the buyer's live rows, not their history.
pub(in crate::store) fn push_buyer_count<'a, DB: Dialect>(
    builder: &mut QueryBuilder<'a, DB>,
    rows: BuyerRows,
    user_id: Uuid,
    status: Option<TicketStatus>,
    now: DateTime<Utc>,
) where
    Uuid: Encode<'a, DB> + Type<DB>,
{
    let table = rows.table();
    // (which live rows, with `now` bound after it; which history columns)
    let (live, closed): (Option<(&str, bool)>, &[&str]) = match status {
        None => (
            Some(("x.status IN ('reserved', 'paid')", false)),
            &["cancelled", "expired"],
        ),
        Some(TicketStatus::Reserved) => (
            Some(("x.status = 'reserved' AND x.expires_at > ", true)),
            &[],
        ),
        Some(TicketStatus::Paid) => (Some(("x.status = 'paid'", false)), &[]),
        Some(TicketStatus::Cancelled) => (None, &["cancelled"]),
        Some(TicketStatus::Expired) => (
            Some(("x.status = 'reserved' AND x.expires_at <= ", true)),
            &["expired"],
        ),
    };
    builder.push("SELECT CAST(0");
    if let Some((condition, then_now)) = live {
        builder
            .push(format!(
                " + (SELECT count(*) FROM {table} x WHERE x.user_id = "
            ))
            .push_bind(user_id)
            .push(" AND ")
            .push(condition);
        if then_now {
            builder.push_bind(DB::Time::from(now));
        }
        builder.push(")");
    }
    if !closed.is_empty() {
        let columns: Vec<String> = closed
            .iter()
            .map(|status| format!("{table}_{status}"))
            .collect();
        builder
            .push(format!(
                " + (SELECT coalesce(sum({}), 0) FROM buyer_history WHERE user_id = ",
                columns.join(" + ")
            ))
            .push_bind(user_id)
            .push(")");
    }
    builder.push(" AS BIGINT)");
}

/// A page of [`super::BuyerFilter`]'s tickets or orders (`$rows`, a [`BuyerRows`]), each row
/// made an item by `$into_item`.
macro_rules! fetch_buyer_page {
    ($pool:expr, $filter:expr, $rows:expr, $into_item:expr) => {{
        let (filter, rows, now) = ($filter, $rows, chrono::Utc::now());
        let (user, status) = (filter.user_id, filter.status);
        fetch_page!(
            $pool,
            rows.select(),
            |builder| sql::push_buyer_count(builder, rows, user, status, now),
            |builder| sql::push_buyer_filter(builder, rows, user, status, now),
            rows.order(),
            filter.page,
            $into_item,
            count_apart,
        )
    }};
}

/// `$1` order, `$2` who acts, `$3` now: the order's new status — paid or cancelled by its buyer
/// while it is reserved and its hold has not passed, refunded by its event's creator while it
/// is paid; its event and what it cost when it changed.
pub(in crate::store) fn order_action_statement(action: OrderAction) -> &'static str {
    match action {
        OrderAction::Pay => {
            "UPDATE orders SET status = 'paid', paid_at = $3, updated_at = $3,
                 payment_status = CASE WHEN total_minor > 0 THEN 'succeeded' ELSE 'none' END,
                 payment_updated_at = $3
             WHERE id = $1 AND user_id = $2 AND status = 'reserved' AND expires_at > $3
             RETURNING event_id, total_minor, waitlist_entry_id"
        }
        // Never while a payment is pending at the provider: it is cancelled there first.
        OrderAction::Cancel => {
            "UPDATE orders SET status = 'cancelled', updated_at = $3
             WHERE id = $1 AND user_id = $2 AND status = 'reserved' AND expires_at > $3
               AND payment_status <> 'pending'
             RETURNING event_id, total_minor, waitlist_entry_id"
        }
        OrderAction::Refund => {
            "UPDATE orders SET status = 'cancelled', paid_at = NULL, updated_at = $3,
                 payment_status = 'refunded', refunded_minor = total_minor,
                 payment_updated_at = $3
             WHERE id = $1 AND status = 'paid'
               AND event_id IN (SELECT id FROM events WHERE creator_id = $2)
             RETURNING event_id, total_minor, waitlist_entry_id"
        }
    }
}

/// Pays or cancels order `order_id` of `user_id` inside the caller's transaction: the order
/// and all its tickets take the new status together, and a cancellation gives every seat
/// back. `false` when the order was not changed (not theirs, not reserved, or past its hold).
async fn apply_order_action<DB: Dialect>(
    conn: &mut DB::Connection,
    order_id: Uuid,
    user_id: Uuid,
    action: OrderAction,
    now: DateTime<Utc>,
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid, i64, Option<Uuid>): FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (Uuid, Uuid, i64): FromRow<'r, DB::Row>,
{
    // What was given back before (a partial refund at the provider's dashboard): a refund
    // counts only the rest on its event.
    let refunded_before: i64 = if action == OrderAction::Refund {
        let locked = format!("{REFUNDED_SO_FAR}{}", DB::LOCK_ROW);
        let before: Option<(i64,)> = sqlx::query_as(&locked)
            .bind(order_id)
            .fetch_optional(&mut *conn)
            .await?;
        before.map_or(0, |(before,)| before)
    } else {
        0
    };
    let changed: Option<(Uuid, i64, Option<Uuid>)> = sqlx::query_as(order_action_statement(action))
        .bind(order_id)
        .bind(user_id)
        .bind(DB::Time::from(now))
        .fetch_optional(&mut *conn)
        .await?;
    let Some((event_id, total_minor, offer)) = changed else {
        return Ok(false);
    };
    let moved = match action {
        OrderAction::Pay => OrderMoved::Paid,
        OrderAction::Cancel => OrderMoved::Cancelled,
        OrderAction::Refund => OrderMoved::Refunded,
    };
    let given_back = total_minor - refunded_before;
    let moved_order = MovedOrder {
        id: order_id,
        event_id,
        offer,
    };
    order_moved::<DB>(conn, moved_order, given_back, moved, now).await?;
    Ok(true)
}

/// Where an order's status (already written) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) enum OrderMoved {
    /// Paid: its tiers count the payment.
    Paid,
    /// Cancelled by its buyer: its seats go back.
    Cancelled,
    /// Its hold ended unpaid: its seats go back.
    Expired,
    /// Paid, then refunded: the payment comes off the counts, the refund is counted, the seats
    /// go back.
    Refunded,
}

/// An order whose status was just written.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) struct MovedOrder {
    pub id: Uuid,
    pub event_id: Uuid,
    /// The waiting-list entry it was offered to (`orders.waitlist_entry_id`).
    pub offer: Option<Uuid>,
}

/// What follows an order's move to a new status, in the transaction that wrote it: its tickets
/// take the status (and an offered order's entry follows: accepted, declined, lapsed), the
/// counters follow, and seats given up go back through the seat ledger, whose offer step then
/// sees the tickets as they now are. `given_back`: what a refund gave back now (counted on the
/// event).
pub(in crate::store) async fn order_moved<DB: Dialect>(
    conn: &mut DB::Connection,
    order: MovedOrder,
    given_back: i64,
    moved: OrderMoved,
    now: DateTime<Utc>,
) -> Result<(), StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid, Uuid, i64): FromRow<'r, DB::Row>,
{
    let MovedOrder {
        id: order_id,
        event_id,
        offer,
    } = order;
    let status = match moved {
        OrderMoved::Paid => TicketStatus::Paid,
        OrderMoved::Cancelled | OrderMoved::Refunded => TicketStatus::Cancelled,
        OrderMoved::Expired => TicketStatus::Expired,
    };
    let set_status = set_order_tickets_status(DB::LOCK_ROW);
    sqlx::query(&set_status)
        .bind(order_id)
        .bind(status.as_str())
        .bind(DB::Time::from(now))
        .execute(&mut *conn)
        .await?;
    let offer_sql = match moved {
        OrderMoved::Paid => Some(super::OFFER_PAID),
        OrderMoved::Cancelled => Some(super::OFFER_DECLINED),
        OrderMoved::Expired => Some(super::OFFER_EXPIRED),
        // A refunded offer stays `purchased`: it was bought (WAITLIST.md is silent).
        OrderMoved::Refunded => None,
    };
    if let (Some(offer_sql), Some(_)) = (offer_sql, offer) {
        sqlx::query(offer_sql)
            .bind(order_id)
            .bind(DB::Time::from(now))
            .execute(&mut *conn)
            .await?;
        let outcome = match moved {
            OrderMoved::Paid => "purchased",
            OrderMoved::Cancelled => "left",
            _ => "expired",
        };
        metrics::counter!("nearbytix_waitlist_offers_ended_total", "outcome" => outcome)
            .increment(1);
    }
    let gives_back = match moved {
        OrderMoved::Paid => {
            sqlx::query(COUNT_PAYMENT)
                .bind(order_id)
                .execute(&mut *conn)
                .await?;
            None
        }
        OrderMoved::Cancelled => Some(SeatsBackCause::Cancelled),
        OrderMoved::Expired => Some(SeatsBackCause::Expired),
        OrderMoved::Refunded => {
            // The event's row before its tiers', as every writer locks them.
            count_refund::<DB>(conn, event_id, given_back, now).await?;
            sqlx::query(UNCOUNT_PAYMENT)
                .bind(order_id)
                .execute(&mut *conn)
                .await?;
            // The organiser's refund the provider made, if it went through one, is done.
            sqlx::query(ORGANISER_REFUND_DONE)
                .bind(order_id)
                .bind(DB::Time::from(now))
                .execute(&mut *conn)
                .await?;
            Some(SeatsBackCause::Refunded)
        }
    };
    if let Some(cause) = gives_back {
        let seats: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(ORDER_SEATS)
            .bind(order_id)
            .fetch_all(&mut *conn)
            .await?;
        let freed = seats
            .into_iter()
            .map(|(event_id, tier_id, seats)| SeatsBack {
                event_id,
                tier_id: Some(tier_id),
                seats,
            });
        ledger::release::<DB>(conn, freed, cause, now).await?;
    }
    Ok(())
}

/// Counts `amount_minor` given back on `event_id`'s orders, for its stats.
pub(in crate::store) async fn count_refund<DB: Dialect>(
    conn: &mut DB::Connection,
    event_id: Uuid,
    amount_minor: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(COUNT_REFUND)
        .bind(event_id)
        .bind(amount_minor)
        .bind(DB::Time::from(now))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Why something was not changed, from its `(owner, status, past deadline)` as `state_sql`
/// (`$1` id, `$2` now) reads it.
async fn change_refusal<DB: Dialect, T>(
    conn: &mut DB::Connection,
    state_sql: &'static str,
    id: Uuid,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Change<T>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid, String, bool): FromRow<'r, DB::Row>,
{
    let state: Option<(Uuid, String, bool)> = sqlx::query_as(state_sql)
        .bind(id)
        .bind(DB::Time::from(now))
        .fetch_optional(&mut *conn)
        .await?;
    let Some((owner, status, past_deadline)) = state else {
        return Ok(Change::NotFound);
    };
    let status = parse_status(&status)?;
    Ok(Change::refusal(owner, user_id, status, past_deadline))
}

/// Pays or cancels order `order_id` inside the caller's transaction; `None` when it changed
/// (the caller reads the order back), else why not.
pub(in crate::store) async fn change_order_on<DB: Dialect>(
    conn: &mut DB::Connection,
    order_id: Uuid,
    user_id: Uuid,
    action: OrderAction,
    now: DateTime<Utc>,
) -> Result<Option<OrderChange>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid, i64, Option<Uuid>): FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (Uuid, Uuid, i64): FromRow<'r, DB::Row>,
    for<'r> (Uuid, String, bool): FromRow<'r, DB::Row>,
{
    if apply_order_action::<DB>(conn, order_id, user_id, action, now).await? {
        return Ok(None);
    }
    let state = match action {
        OrderAction::Pay | OrderAction::Cancel => ORDER_STATE,
        OrderAction::Refund => REFUND_STATE,
    };
    let refusal = change_refusal::<DB, OrderDetails>(conn, state, order_id, user_id, now);
    Ok(Some(refusal.await?))
}

#[derive(FromRow)]
pub(in crate::store) struct OrderRow<T> {
    id: Uuid,
    user_id: Uuid,
    event_id: Uuid,
    status: String,
    currency: String,
    total_minor: i64,
    expires_at: T,
    paid_at: Option<T>,
    created_at: T,
    updated_at: T,
    payment_provider: String,
    payment_status: String,
    payment_intent_id: Option<String>,
    refunded_minor: i64,
    payment_failure_code: Option<String>,
    payment_updated_at: Option<T>,
    payment_attempts: i32,
    waitlist_entry_id: Option<Uuid>,
    #[sqlx(flatten)]
    event: EventSummaryColumns<T>,
}

impl<T> OrderRow<T> {
    pub(in crate::store) fn id(&self) -> Uuid {
        self.id
    }
}

#[derive(FromRow)]
pub(in crate::store) struct ItemRow {
    order_id: Uuid,
    tier_id: Uuid,
    tier_name: String,
    quantity: i32,
    unit_price_minor: i64,
}

/// Orders with their items and tickets (each list ordered within its order).
pub(in crate::store) fn assemble_orders<T: StoredTime>(
    rows: Vec<OrderRow<T>>,
    items: Vec<ItemRow>,
    tickets: Vec<TicketRow<T>>,
) -> Result<Vec<OrderDetails>, StoreError> {
    let mut lines: HashMap<Uuid, Vec<PlannedLine>> = HashMap::new();
    for item in items {
        lines.entry(item.order_id).or_default().push(PlannedLine {
            tier_id: item.tier_id,
            tier_name: item.tier_name,
            quantity: item.quantity,
            unit_price_minor: item.unit_price_minor,
        });
    }
    let mut held: HashMap<Uuid, Vec<TicketDetails>> = HashMap::new();
    for ticket in tickets {
        let ticket = ticket.into_details()?;
        held.entry(ticket.ticket.order_id).or_default().push(ticket);
    }
    rows.into_iter()
        .map(|row| {
            Ok(OrderDetails {
                lines: lines.remove(&row.id).unwrap_or_default(),
                tickets: held.remove(&row.id).unwrap_or_default(),
                order: Order {
                    id: row.id,
                    user_id: row.user_id,
                    event_id: row.event_id,
                    status: parse_status(&row.status)?,
                    currency: row.currency,
                    total_minor: row.total_minor,
                    expires_at: row.expires_at.into_utc()?,
                    paid_at: row.paid_at.map(StoredTime::into_utc).transpose()?,
                    created_at: row.created_at.into_utc()?,
                    updated_at: row.updated_at.into_utc()?,
                    payment: Payment {
                        provider: PaymentProvider::parse(&row.payment_provider).ok_or_else(
                            || StoreError::Corrupt(format!("provider {}", row.payment_provider)),
                        )?,
                        status: PaymentStatus::parse(&row.payment_status).ok_or_else(|| {
                            StoreError::Corrupt(format!("payment {}", row.payment_status))
                        })?,
                        intent_id: row.payment_intent_id,
                        refunded_minor: row.refunded_minor,
                        failure_code: row.payment_failure_code,
                        attempts: row.payment_attempts,
                        updated_at: row
                            .payment_updated_at
                            .map(StoredTime::into_utc)
                            .transpose()?,
                    },
                    waitlist_entry_id: row.waitlist_entry_id,
                },
                event: row.event.into_summary(row.event_id)?,
            })
        })
        .collect()
}
