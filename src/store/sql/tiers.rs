//! Tiers: their columns, statements and rows, an organiser's tier changes (seats a new or
//! raised tier puts on sale go through the seat ledger) and an event's sales per tier.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, FromRow, Type};
use uuid::Uuid;

use super::{Dialect, StoredTime};
use crate::domain::event::MAX_TIERS;
use crate::domain::{
    EventStats, SalesFigures, SeatsBack, SeatsBackCause, Tier, TierDraft, TierOutcome,
};
use crate::store::{StoreError, TierChange, ledger};

/// `$1` id, `$2` event, `$3..$9` the tier (see [`bind_tier`]), `$10` position, `$11` write
/// time.
pub(in crate::store) const INSERT_TIER: &str = "INSERT INTO ticket_tiers
        (id, event_id, name, description, price_minor, quantity, max_per_order, sales_start,
         sales_end, position, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)";

/// `$1` id, `$2` event, `$3..$9` the tier (see [`bind_tier`]), `$10` write time.
const UPDATE_TIER: &str = "UPDATE ticket_tiers SET name = $3, description = $4, price_minor = $5,
        quantity = $6, max_per_order = $7, sales_start = $8, sales_end = $9, updated_at = $10
     WHERE id = $1 AND event_id = $2";

/// The columns of a [`TierRow`], from `ticket_tiers`.
macro_rules! tier_columns {
    () => {
        "id, name, description, price_minor, quantity, sold, max_per_order, sales_start, \
         sales_end, position"
    };
}

/// `$1` event: its tiers in sale order.
pub(in crate::store) const SALE_TIERS: &str = concat!(
    "SELECT ",
    tier_columns!(),
    " FROM ticket_tiers WHERE event_id = $1 ORDER BY position"
);

/// Binds `$3..$9` of [`INSERT_TIER`].
pub(in crate::store) fn bind_tier<'q, DB: Dialect>(
    query: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    tier: &'q TierDraft,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i32>: Encode<'q, DB> + Type<DB>,
    Option<DB::Time>: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(tier.name())
        .bind(tier.description())
        .bind(tier.price_minor())
        .bind(tier.quantity())
        .bind(tier.max_per_order())
        .bind(tier.sales_start().map(DB::Time::from))
        .bind(tier.sales_end().map(DB::Time::from))
}

#[derive(FromRow)]
pub(in crate::store) struct TierRow<T> {
    pub(super) id: Uuid,
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) price_minor: i64,
    pub(super) quantity: Option<i32>,
    pub(super) sold: i32,
    pub(super) max_per_order: Option<i32>,
    pub(super) sales_start: Option<T>,
    pub(super) sales_end: Option<T>,
    pub(super) position: i32,
}

impl<T: StoredTime> TierRow<T> {
    pub(in crate::store) fn into_tier(self) -> Result<Tier, StoreError> {
        Ok(Tier {
            id: self.id,
            name: self.name,
            description: self.description,
            price_minor: self.price_minor,
            quantity: self.quantity,
            sold: self.sold,
            max_per_order: self.max_per_order,
            sales_start: self.sales_start.map(StoredTime::into_utc).transpose()?,
            sales_end: self.sales_end.map(StoredTime::into_utc).transpose()?,
            position: self.position,
        })
    }
}

/// An event's tiers in sale order, read on `conn`.
pub(in crate::store) async fn tiers_on<DB: Dialect>(
    conn: &mut DB::Connection,
    event_id: Uuid,
) -> Result<Vec<Tier>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'r> TierRow<DB::Time>: FromRow<'r, DB::Row>,
{
    let rows: Vec<TierRow<DB::Time>> = sqlx::query_as(SALE_TIERS)
        .bind(event_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter().map(TierRow::into_tier).collect()
}

/// `$1` event: its creator and seats left ([`EVENT_OWNER_AND_SEATS_FOR_UPDATE`] locks the
/// row on PostgreSQL, as every tier counter change does).
pub(in crate::store) const EVENT_OWNER_AND_SEATS: &str =
    "SELECT creator_id, CAST(total_tickets - tickets_sold AS BIGINT) FROM events WHERE id = $1";

pub(in crate::store) const EVENT_OWNER_AND_SEATS_FOR_UPDATE: &str = "SELECT creator_id,
        CAST(total_tickets - tickets_sold AS BIGINT) FROM events WHERE id = $1 FOR UPDATE";

/// Applies `change` to the tiers of `event_id` inside the caller's transaction, after
/// `owner_sql` (one of [`EVENT_OWNER_AND_SEATS`]) has read the event. The event's due holds
/// are released first (through the seat ledger) unless a tier is added, so that `sold` counts
/// only live tickets; seats a new or raised tier puts on sale go through the ledger too.
pub(in crate::store) async fn change_tier_on<DB: Dialect>(
    conn: &mut DB::Connection,
    owner_sql: &'static str,
    event_id: Uuid,
    creator_id: Uuid,
    change: TierChange<'_>,
    now: DateTime<Utc>,
) -> Result<TierOutcome, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DB::Time>: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid, i64): FromRow<'r, DB::Row>,
    for<'r> TierRow<DB::Time>: FromRow<'r, DB::Row>,
{
    // `sold` must count live tickets only when a tier is checked against it.
    if !matches!(change, TierChange::Add(_)) {
        ledger::expire_due_holds::<DB>(conn, Some(&[event_id]), i64::MAX, now).await?;
    }
    let owner: Option<(Uuid, i64)> = sqlx::query_as(owner_sql)
        .bind(event_id)
        .fetch_optional(&mut *conn)
        .await?;
    let seats_left = match owner {
        None => return Ok(TierOutcome::EventNotFound),
        Some((owner, _)) if owner != creator_id => return Ok(TierOutcome::NotCreator),
        Some((_, seats_left)) => seats_left,
    };
    let tiers = tiers_on::<DB>(conn, event_id).await?;
    let named = |name: &str, except: Option<Uuid>| {
        tiers
            .iter()
            .any(|tier| tier.name == name && Some(tier.id) != except)
    };
    // What the changed tier could sell before: a new tier nothing.
    let mut was_available = 0;
    let (saved, cause) = match change {
        TierChange::Add(draft) => {
            if tiers.len() >= MAX_TIERS {
                return Ok(TierOutcome::TooManyTiers);
            }
            if named(draft.name(), None) {
                return Ok(TierOutcome::NameTaken);
            }
            let id = Uuid::now_v7();
            let position = tiers
                .iter()
                .map(|tier| tier.position + 1)
                .max()
                .unwrap_or(0);
            bind_tier(sqlx::query(INSERT_TIER).bind(id).bind(event_id), draft)
                .bind(position)
                .bind(DB::Time::from(now))
                .execute(&mut *conn)
                .await?;
            (id, SeatsBackCause::TierAdded)
        }
        TierChange::Update(id, draft) => {
            let Some(tier) = tiers.iter().find(|tier| tier.id == id) else {
                return Ok(TierOutcome::TierNotFound);
            };
            if named(draft.name(), Some(id)) {
                return Ok(TierOutcome::NameTaken);
            }
            if draft
                .quantity()
                .is_some_and(|quantity| quantity < tier.sold)
            {
                return Ok(TierOutcome::BelowSold);
            }
            was_available = tier.available(seats_left);
            bind_tier(sqlx::query(UPDATE_TIER).bind(id).bind(event_id), draft)
                .bind(DB::Time::from(now))
                .execute(&mut *conn)
                .await?;
            (id, SeatsBackCause::TierRaised)
        }
        TierChange::Delete(id) => {
            let Some(tier) = tiers.iter().find(|tier| tier.id == id) else {
                return Ok(TierOutcome::TierNotFound);
            };
            if tier.sold > 0 {
                return Ok(TierOutcome::HasTickets);
            }
            if tiers.len() == 1 {
                return Ok(TierOutcome::LastTier);
            }
            sqlx::query("DELETE FROM ticket_tiers WHERE id = $1 AND event_id = $2")
                .bind(id)
                .bind(event_id)
                .execute(&mut *conn)
                .await?;
            DB::close_tier_line(conn, id, now).await?;
            return Ok(TierOutcome::Deleted);
        }
    };
    let saved_tier = |tiers: Vec<Tier>| {
        tiers
            .into_iter()
            .find(|tier| tier.id == saved)
            .ok_or_else(|| StoreError::Corrupt("a saved tier vanished".into()))
    };
    let tier = saved_tier(tiers_on::<DB>(conn, event_id).await?)?;
    let back = SeatsBack {
        event_id,
        tier_id: Some(tier.id),
        seats: tier.available(seats_left) - was_available,
    };
    if ledger::capacity_back::<DB>(conn, back, cause, now).await? == 0 {
        return Ok(TierOutcome::Saved(Box::new(tier)));
    }
    // The answer shows what the offer step took of the seats.
    let tier = saved_tier(tiers_on::<DB>(conn, event_id).await?)?;
    Ok(TierOutcome::Saved(Box::new(tier)))
}

/// `$1` event, `$2` now: each tier's live reservations, payments and revenue (at the orders'
/// prices), from the counters its sales keep: reserved is sold less paid less the holds
/// already due that the sweeper has not reached (few: it runs every second). The cost is by
/// tiers and due holds, not by tickets.
const TIER_SALES: &str = "SELECT tt.id,
        CAST(tt.sold - tt.paid - coalesce((SELECT sum(oi.quantity) FROM orders o
             JOIN order_items oi ON oi.order_id = o.id AND oi.tier_id = tt.id
             WHERE o.event_id = $1 AND o.status = 'reserved' AND o.expires_at <= $2), 0)
             AS BIGINT) AS reserved,
        CAST(tt.paid AS BIGINT) AS paid, CAST(tt.revenue_minor AS BIGINT) AS revenue_minor
     FROM ticket_tiers tt WHERE tt.event_id = $1";

/// An event's sales for its creator; `None` when there is no such event.
pub(in crate::store) async fn event_stats_on<DB: Dialect>(
    conn: &mut DB::Connection,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<(Uuid, EventStats)>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid, String, i32, i32, i64): FromRow<'r, DB::Row>,
    for<'r> (Uuid, i64, i64, i64): FromRow<'r, DB::Row>,
    for<'r> TierRow<DB::Time>: FromRow<'r, DB::Row>,
{
    let event: Option<(Uuid, String, i32, i32, i64)> = sqlx::query_as(
        "SELECT creator_id, currency, total_tickets, tickets_sold, refunded_minor
         FROM events WHERE id = $1",
    )
    .bind(event_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((creator_id, currency, total_tickets, tickets_sold, refunded_minor)) = event else {
        return Ok(None);
    };
    let tiers = tiers_on::<DB>(conn, event_id).await?;
    let sales: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(TIER_SALES)
        .bind(event_id)
        .bind(DB::Time::from(now))
        .fetch_all(&mut *conn)
        .await?;
    let figures = |tier_id: Uuid| {
        let found = sales.iter().find(|(id, ..)| *id == tier_id);
        let (reserved, paid, revenue_minor) = found
            .map_or((0, 0, 0), |(_, reserved, paid, revenue)| {
                (*reserved, *paid, *revenue)
            });
        SalesFigures {
            reserved,
            paid,
            revenue_minor,
        }
    };
    let tiers: Vec<(Tier, SalesFigures)> = tiers
        .into_iter()
        .map(|tier| {
            let sold = figures(tier.id);
            (tier, sold)
        })
        .collect();
    let sales = SalesFigures {
        reserved: tiers.iter().map(|(_, sold)| sold.reserved).sum(),
        paid: tiers.iter().map(|(_, sold)| sold.paid).sum(),
        revenue_minor: tiers.iter().map(|(_, sold)| sold.revenue_minor).sum(),
    };
    Ok(Some((
        creator_id,
        EventStats {
            event_id,
            currency,
            total_tickets,
            available: i64::from(total_tickets - tickets_sold).max(0),
            sales,
            refunded_minor,
            tiers,
            waitlist: Default::default(),
            tier_waitlists: Default::default(),
        },
    )))
}
