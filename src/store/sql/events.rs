//! Events: their columns, statements and rows, a listing's filter and count, and an
//! organiser's update (a raised capacity goes through the seat ledger).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::query::QueryAs;
use sqlx::{Database, Encode, FromRow, QueryBuilder, Type};
use uuid::Uuid;

use super::{Dialect, INSERT_TIER, StoredTime, TierRow, bind_tier, escape_like, tiers_on};
use crate::domain::{
    Event, EventAvailability, EventDetails, EventDraft, EventUpdate, NewEvent, SeatsBack,
    SeatsBackCause, Tier, TierSale, Venue, VenueFields, WaitlistSettings,
};
use crate::store::{EventFilter, StoreError, ledger};

macro_rules! event_columns {
    () => {
        "id, creator_id, title, description, start_time, end_time, total_tickets, tickets_sold, \
         latitude, longitude, venue_name, address_line1, address_line2, city, state, country, \
         postal_code, currency, max_tickets_per_user, waitlist_enabled, waitlist_offer_minutes, \
         created_at, updated_at"
    };
}

/// [`bind_draft`]'s `$1..$20`, then `$21` the write time.
pub(in crate::store) const INSERT_EVENT: &str = concat!(
    "INSERT INTO events (id, creator_id, title, description, start_time, end_time,
        total_tickets, latitude, longitude, venue_name, address_line1, address_line2,
        city, state, country, postal_code, currency, max_tickets_per_user, waitlist_enabled,
        waitlist_offer_minutes, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20, $21, $21)
     RETURNING ",
    event_columns!()
);

/// [`bind_draft`]'s `$1..$20`, then `$21` the write time; only the creator's own event.
pub(in crate::store) const UPDATE_EVENT: &str = concat!(
    "UPDATE events SET title = $3, description = $4, start_time = $5, end_time = $6,
        total_tickets = $7, latitude = $8, longitude = $9, venue_name = $10,
        address_line1 = $11, address_line2 = $12, city = $13, state = $14, country = $15,
        postal_code = $16, currency = $17, max_tickets_per_user = $18,
        waitlist_enabled = $19, waitlist_offer_minutes = $20, updated_at = $21
     WHERE id = $1 AND creator_id = $2 RETURNING ",
    event_columns!()
);

/// `$1` an event: its columns, availability version and waiting line, joined to its tiers in
/// sale order (one row per tier, tier columns prefixed `tier_`, all null for an event without
/// tiers), so that an event with its tiers costs one round trip.
const FIND_EVENT_WITH_TIERS: &str = concat!(
    "SELECT e.*, t.id AS tier_id, t.name AS tier_name, t.description AS tier_description,
        t.price_minor AS tier_price_minor, t.quantity AS tier_quantity, t.sold AS tier_sold,
        t.max_per_order AS tier_max_per_order, t.sales_start AS tier_sales_start,
        t.sales_end AS tier_sales_end, t.position AS tier_position
     FROM (SELECT ",
    event_columns!(),
    ", availability_version, waitlist_waiting FROM events WHERE id = $1) e
     LEFT JOIN ticket_tiers t ON t.event_id = e.id
     ORDER BY t.position"
);

/// A row of [`FIND_EVENT_WITH_TIERS`].
#[derive(FromRow)]
pub(in crate::store) struct EventTierRow<T> {
    #[sqlx(flatten)]
    event: EventRow<T>,
    availability_version: i64,
    waitlist_waiting: i32,
    #[sqlx(flatten)]
    tier: JoinedTierColumns<T>,
}

/// The tier columns of an [`EventTierRow`]: null when the event has no tier.
#[derive(FromRow)]
pub(in crate::store) struct JoinedTierColumns<T> {
    tier_id: Option<Uuid>,
    tier_name: Option<String>,
    tier_description: Option<String>,
    tier_price_minor: Option<i64>,
    tier_quantity: Option<i32>,
    tier_sold: Option<i32>,
    tier_max_per_order: Option<i32>,
    tier_sales_start: Option<T>,
    tier_sales_end: Option<T>,
    tier_position: Option<i32>,
}

impl<T: StoredTime> JoinedTierColumns<T> {
    fn into_tier(self) -> Result<Option<Tier>, StoreError> {
        let Some(id) = self.tier_id else {
            return Ok(None);
        };
        let missing = || StoreError::Corrupt(format!("tier {id}: a required column is null"));
        let row = TierRow {
            id,
            name: self.tier_name.ok_or_else(missing)?,
            description: self.tier_description,
            price_minor: self.tier_price_minor.ok_or_else(missing)?,
            quantity: self.tier_quantity,
            sold: self.tier_sold.ok_or_else(missing)?,
            max_per_order: self.tier_max_per_order,
            sales_start: self.tier_sales_start,
            sales_end: self.tier_sales_end,
            position: self.tier_position.ok_or_else(missing)?,
        };
        row.into_tier().map(Some)
    }
}

/// Event `id` with its tiers and what an availability snapshot adds, in one statement on
/// `conn`.
pub(in crate::store) async fn event_availability_on<DB: Dialect>(
    conn: &mut DB::Connection,
    id: Uuid,
) -> Result<Option<EventAvailability>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'r> EventTierRow<DB::Time>: FromRow<'r, DB::Row>,
{
    let rows: Vec<EventTierRow<DB::Time>> = sqlx::query_as(FIND_EVENT_WITH_TIERS)
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    let mut rows = rows.into_iter();
    let Some(first) = rows.next() else {
        return Ok(None);
    };
    let (version, waiting) = (first.availability_version, first.waitlist_waiting);
    let mut tiers = Vec::with_capacity(rows.len() + 1);
    tiers.extend(first.tier.into_tier()?);
    for row in rows {
        tiers.extend(row.tier.into_tier()?);
    }
    Ok(Some(EventAvailability {
        details: first.event.with_tiers(tiers)?,
        version,
        waitlist_waiting: waiting,
    }))
}

/// Event `id` with its tiers, read on `conn` in one statement.
pub(in crate::store) async fn find_event_on<DB: Dialect>(
    conn: &mut DB::Connection,
    id: Uuid,
) -> Result<Option<EventDetails>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'r> EventTierRow<DB::Time>: FromRow<'r, DB::Row>,
{
    let found = event_availability_on::<DB>(conn, id).await?;
    Ok(found.map(|found| found.details))
}

pub(in crate::store) const EVENT_OWNER: &str = "SELECT creator_id FROM events WHERE id = $1";

pub(in crate::store) const SELECT_EVENTS: &str =
    concat!("SELECT ", event_columns!(), " FROM events e");

pub(in crate::store) const COUNT_EVENTS: &str = "SELECT count(*) FROM events e";

pub(in crate::store) const EVENTS_ORDER: &str = " ORDER BY e.start_time, e.id";

#[derive(FromRow)]
pub(in crate::store) struct EventRow<T> {
    id: Uuid,
    creator_id: Uuid,
    title: String,
    description: Option<String>,
    start_time: T,
    end_time: T,
    total_tickets: i32,
    tickets_sold: i32,
    #[sqlx(flatten)]
    venue: VenueColumns,
    currency: String,
    max_tickets_per_user: Option<i32>,
    waitlist_enabled: bool,
    waitlist_offer_minutes: Option<i32>,
    created_at: T,
    updated_at: T,
}

/// The venue columns of an event row, read into the domain's unchecked venue fields (which
/// [`Venue::parse`] then checks, as it checks a client's).
pub(in crate::store) struct VenueColumns(VenueFields);

impl<'r, R: sqlx::Row> FromRow<'r, R> for VenueColumns
where
    &'r str: sqlx::ColumnIndex<R>,
    f64: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(VenueColumns(VenueFields {
            latitude: row.try_get("latitude")?,
            longitude: row.try_get("longitude")?,
            venue_name: row.try_get("venue_name")?,
            address_line1: row.try_get("address_line1")?,
            address_line2: row.try_get("address_line2")?,
            city: row.try_get("city")?,
            state: row.try_get("state")?,
            country: row.try_get("country")?,
            postal_code: row.try_get("postal_code")?,
        }))
    }
}

/// Tiers' quotas and sales windows, for their events' availability (table alias `t`), read
/// into [`TierSaleRow`].
macro_rules! select_tier_sales {
    () => {
        "SELECT t.event_id, t.quantity, t.sold, t.sales_start, t.sales_end FROM ticket_tiers t"
    };
}

pub(in crate::store) const SELECT_TIER_SALES: &str = select_tier_sales!();

/// Whether tier `t` sells at the instant `$now` (an SQL expression): a seat left in its quota,
/// inside its sales window. An event can be bought when one of its tiers sells and it has a
/// seat left: the SQL side of [`Event::is_sold_out`].
macro_rules! tier_selling_at {
    ($now:literal) => {
        concat!(
            "(t.quantity IS NULL OR t.sold < t.quantity)
             AND (t.sales_start IS NULL OR t.sales_start <= ",
            $now,
            ") AND (t.sales_end IS NULL OR t.sales_end > ",
            $now,
            ")"
        )
    };
}

#[derive(FromRow)]
pub(in crate::store) struct TierSaleRow<T> {
    event_id: Uuid,
    quantity: Option<i32>,
    sold: i32,
    sales_start: Option<T>,
    sales_end: Option<T>,
}

/// `rows` made events, each with the sales of its tiers among `sales` (read in sale order).
pub(in crate::store) fn events_with_sales<T: StoredTime>(
    rows: Vec<EventRow<T>>,
    sales: Vec<TierSaleRow<T>>,
) -> Result<Vec<Event>, StoreError> {
    let mut by_event: HashMap<Uuid, Vec<TierSale>> = HashMap::with_capacity(rows.len());
    for sale in sales {
        by_event.entry(sale.event_id).or_default().push(TierSale {
            quantity: sale.quantity,
            sold: sale.sold,
            sales_start: sale.sales_start.map(StoredTime::into_utc).transpose()?,
            sales_end: sale.sales_end.map(StoredTime::into_utc).transpose()?,
        });
    }
    rows.into_iter()
        .map(|row| {
            let sales = by_event.remove(&row.id).unwrap_or_default();
            row.into_event(sales)
        })
        .collect()
}

/// `$rows` (a `Vec` of the backend's `EventRow`) made events, with their tiers' sales read
/// in one statement on `$executor`. A macro for the reason [`fetch_page!`]'s doc gives.
macro_rules! events_with_sales {
    ($executor:expr, $rows:expr) => {{
        let rows: Vec<EventRow> = $rows;
        let sales = if rows.is_empty() {
            Vec::new()
        } else {
            let mut builder = sqlx::QueryBuilder::new(sql::SELECT_TIER_SALES);
            builder.push(" WHERE t.event_id IN (");
            let mut ids = builder.separated(", ");
            for row in &rows {
                ids.push_bind(row.id());
            }
            builder.push(") ORDER BY t.position");
            builder.build_query_as().fetch_all($executor).await?
        };
        sql::events_with_sales(rows, sales)
    }};
}

impl<T: StoredTime> EventRow<T> {
    pub(in crate::store) fn id(&self) -> Uuid {
        self.id
    }

    /// The event of this row with `tiers`, its tiers in sale order.
    pub(in crate::store) fn with_tiers(self, tiers: Vec<Tier>) -> Result<EventDetails, StoreError> {
        let sales = tiers.iter().map(Tier::sale).collect();
        Ok(EventDetails {
            event: self.into_event(sales)?,
            tiers,
        })
    }

    /// The event of this row whose tiers sell as `sales` says.
    pub(in crate::store) fn into_event(self, sales: Vec<TierSale>) -> Result<Event, StoreError> {
        let venue = Venue::parse(self.venue.0)
            .map_err(|violations| StoreError::Corrupt(format!("venue: {violations}")))?;
        Ok(Event {
            id: self.id,
            creator_id: self.creator_id,
            title: self.title,
            description: self.description,
            start_time: self.start_time.into_utc()?,
            end_time: self.end_time.into_utc()?,
            total_tickets: self.total_tickets,
            tickets_sold: self.tickets_sold,
            venue,
            currency: self.currency,
            max_tickets_per_user: self.max_tickets_per_user,
            waitlist: WaitlistSettings {
                enabled: self.waitlist_enabled,
                offer_minutes: self.waitlist_offer_minutes,
            },
            created_at: self.created_at.into_utc()?,
            updated_at: self.updated_at.into_utc()?,
            sales,
        })
    }
}

/// Binds `$1` id, `$2` creator and `$3..$20` the draft, in the column order of
/// [`INSERT_EVENT`] and [`UPDATE_EVENT`].
pub(in crate::store) fn bind_draft<'q, DB: Dialect, O>(
    query: QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>,
    id: Uuid,
    creator_id: Uuid,
    draft: &'q EventDraft,
) -> QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>
where
    Uuid: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    i32: Encode<'q, DB> + Type<DB>,
    Option<i32>: Encode<'q, DB> + Type<DB>,
    f64: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    let venue = draft.venue();
    query
        .bind(id)
        .bind(creator_id)
        .bind(draft.title())
        .bind(draft.description())
        .bind(DB::Time::from(draft.start_time()))
        .bind(DB::Time::from(draft.end_time()))
        .bind(draft.total_tickets())
        .bind(venue.location().latitude())
        .bind(venue.location().longitude())
        .bind(venue.venue_name())
        .bind(venue.address_line1())
        .bind(venue.address_line2())
        .bind(venue.city())
        .bind(venue.state())
        .bind(venue.country())
        .bind(venue.postal_code())
        .bind(draft.currency())
        .bind(draft.max_tickets_per_user())
        .bind(draft.waitlist().enabled)
        .bind(draft.waitlist().offer_minutes)
}

/// The `WHERE` clause of an event listing (table alias `e`).
pub(in crate::store) fn push_event_filter<'a, DB: Dialect>(
    builder: &mut QueryBuilder<'a, DB>,
    filter: &EventFilter,
    now: DateTime<Utc>,
) where
    String: Encode<'a, DB> + Type<DB>,
{
    builder.push(" WHERE 1 = 1");
    if filter.upcoming_only {
        builder
            .push(" AND e.start_time > ")
            .push_bind(DB::Time::from(now));
    }
    if let Some(text) = &filter.text {
        let pattern = format!("%{}%", escape_like(text));
        let mut columns = builder.separated(" OR ");
        columns.push_unseparated(" AND (");
        for column in ["e.title", "e.venue_name", "e.city"] {
            columns
                .push(format_args!("{column} {} ", DB::ILIKE))
                .push_bind_unseparated(pattern.clone())
                .push_unseparated(" ESCAPE '\\'");
        }
        builder.push(")");
    }
    if let Some(after) = filter.starts_after {
        builder
            .push(" AND e.start_time > ")
            .push_bind(DB::Time::from(after));
    }
    if let Some(before) = filter.starts_before {
        builder
            .push(" AND e.start_time < ")
            .push_bind(DB::Time::from(before));
    }
}

/// The query counting [`EventFilter`]'s events. A text filter can only be counted row by row;
/// otherwise the filter is a range of start times, counted from the per-day counts the
/// triggers of `event_start_days` keep: the events starting before a bound are the days
/// before its day plus, through the `start_time` index, the events of its day before it. The
/// cost follows the number of days and the events of the bounds' days, not of all events.
pub(in crate::store) fn push_event_count<'a, DB: Dialect>(
    builder: &mut QueryBuilder<'a, DB>,
    filter: &EventFilter,
    now: DateTime<Utc>,
) where
    String: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    if filter.text.is_some() {
        builder.push(COUNT_EVENTS);
        push_event_filter(builder, filter, now);
        return;
    }
    let lower = [filter.upcoming_only.then_some(now), filter.starts_after]
        .into_iter()
        .flatten()
        .max();
    // Starting before `bound` (or at it, with `inclusive`).
    let push_before = |builder: &mut QueryBuilder<'a, DB>, bound: DateTime<Utc>, inclusive| {
        let day = bound.timestamp().div_euclid(SECONDS_PER_DAY);
        let day_start = DateTime::from_timestamp(day * SECONDS_PER_DAY, 0).unwrap_or(bound);
        builder
            .push("(SELECT coalesce(sum(events), 0) FROM event_start_days WHERE day < ")
            .push_bind(day)
            .push(") + (SELECT count(*) FROM events WHERE start_time >= ")
            .push_bind(DB::Time::from(day_start))
            .push(if inclusive {
                " AND start_time <= "
            } else {
                " AND start_time < "
            })
            .push_bind(DB::Time::from(bound))
            .push(")");
    };
    builder.push("SELECT CAST(");
    match filter.starts_before {
        Some(before) => push_before(builder, before, false),
        None => {
            builder.push("(SELECT coalesce(sum(events), 0) FROM event_start_days)");
        }
    }
    if let Some(after) = lower {
        builder.push(" - (");
        push_before(builder, after, true);
        builder.push(")");
    }
    builder.push(" AS BIGINT)");
}

const SECONDS_PER_DAY: i64 = 86_400;

/// A page of [`EventFilter`]'s events, with the backend's row type `EventRow` in scope.
macro_rules! fetch_events_page {
    ($pool:expr, $filter:expr, $page:expr) => {{
        let (filter, now) = ($filter, chrono::Utc::now());
        let rows: Result<Page<EventRow>, StoreError> = fetch_page!(
            $pool,
            sql::SELECT_EVENTS,
            |builder| sql::push_event_count(builder, filter, now),
            |builder| sql::push_event_filter(builder, filter, now),
            sql::EVENTS_ORDER,
            $page,
            Ok,
            count_apart,
        );
        let rows = rows?;
        Ok(Page {
            items: events_with_sales!($pool, rows.items)?,
            total: rows.total,
        })
    }};
}

/// `$1` event: its creator, capacity, tickets sold, currency and whether it has orders (read
/// through their tickets, which are indexed by event; [`EVENT_SALE_FOR_UPDATE`] locks the row
/// on PostgreSQL).
pub(in crate::store) const EVENT_SALE: &str = "SELECT creator_id, total_tickets, tickets_sold,
        currency, EXISTS (SELECT 1 FROM tickets WHERE event_id = $1)
     FROM events WHERE id = $1";
pub(in crate::store) const EVENT_SALE_FOR_UPDATE: &str = "SELECT creator_id, total_tickets,
        tickets_sold, currency, EXISTS (SELECT 1 FROM tickets WHERE event_id = $1)
     FROM events WHERE id = $1 FOR UPDATE OF events";

/// Replaces the creator-controlled fields of event `id` inside the caller's transaction, after
/// `sale_sql` (one of [`EVENT_SALE`]) has read it: a total below the tickets sold, and a new
/// currency once the event has orders, are refused; seats a raised total puts on sale go
/// through the seat ledger.
pub(in crate::store) async fn update_event_on<DB: Dialect>(
    conn: &mut DB::Connection,
    sale_sql: &'static str,
    id: Uuid,
    creator_id: Uuid,
    draft: &EventDraft,
    now: DateTime<Utc>,
) -> Result<EventUpdate, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid, i32, i32, String, bool): FromRow<'r, DB::Row>,
    for<'r> EventRow<DB::Time>: FromRow<'r, DB::Row>,
    for<'r> TierRow<DB::Time>: FromRow<'r, DB::Row>,
    for<'r> EventTierRow<DB::Time>: FromRow<'r, DB::Row>,
{
    let sale: Option<(Uuid, i32, i32, String, bool)> = sqlx::query_as(sale_sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((owner, total_before, sold, currency, has_orders)) = sale else {
        return Ok(EventUpdate::NotFound);
    };
    if owner != creator_id {
        return Ok(EventUpdate::NotCreator);
    }
    if draft.total_tickets() < sold {
        return Ok(EventUpdate::BelowSold);
    }
    // Orders keep their prices in the event's currency: it stays once there are any.
    if has_orders && draft.currency() != currency {
        return Ok(EventUpdate::CurrencyLocked);
    }
    let row: EventRow<DB::Time> = bind_draft(sqlx::query_as(UPDATE_EVENT), id, creator_id, draft)
        .bind(DB::Time::from(now))
        .fetch_one(&mut *conn)
        .await?;
    let back = SeatsBack {
        event_id: id,
        tier_id: None,
        seats: i64::from(draft.total_tickets()) - i64::from(total_before),
    };
    // A disabled list closes its line; open offers run their course.
    DB::close_disabled_line(conn, id, now).await?;
    let offers =
        ledger::capacity_back::<DB>(conn, back, SeatsBackCause::CapacityRaised, now).await?;
    let details = if offers > 0 {
        // The answer shows what the offer step took of the seats.
        find_event_on::<DB>(conn, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("event {id} vanished under its lock")))?
    } else {
        row.with_tiers(tiers_on::<DB>(conn, id).await?)?
    };
    Ok(EventUpdate::Done(Box::new(details)))
}

/// Stores a new event (with a fresh id) created by `creator_id`, with its tiers in order,
/// inside the caller's transaction; the event as stored.
pub(in crate::store) async fn insert_event_on<DB: Dialect>(
    conn: &mut DB::Connection,
    creator_id: Uuid,
    event: &NewEvent,
    now: DateTime<Utc>,
) -> Result<EventDetails, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DB::Time>: Encode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'r> EventRow<DB::Time>: FromRow<'r, DB::Row>,
    for<'r> TierRow<DB::Time>: FromRow<'r, DB::Row>,
{
    let id = Uuid::now_v7();
    let row: EventRow<DB::Time> =
        bind_draft(sqlx::query_as(INSERT_EVENT), id, creator_id, &event.draft)
            .bind(DB::Time::from(now))
            .fetch_one(&mut *conn)
            .await?;
    for (position, tier) in (0i32..).zip(&event.tiers) {
        bind_tier(sqlx::query(INSERT_TIER).bind(Uuid::now_v7()).bind(id), tier)
            .bind(position)
            .bind(DB::Time::from(now))
            .execute(&mut *conn)
            .await?;
    }
    let tiers = tiers_on::<DB>(conn, id).await?;
    row.with_tiers(tiers)
}
