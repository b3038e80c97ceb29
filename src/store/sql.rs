//! What both SQL dialects share: column lists, row mapping (generic over how a backend stores
//! timestamps), listing filters, paging and the event binding order.

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::query::QueryAs;
use sqlx::{Database, Encode, FromRow, QueryBuilder, Type};
use uuid::Uuid;

use super::ledger;
use super::{
    ChangeCursor, EventChanges, EventFilter, HeldKey, IdempotencyClaim, OrderAction,
    SearchableEvents, StoreError, TierChange,
};
use crate::domain::event::MAX_TIERS;
use crate::domain::{
    Change, Event, EventDraft, EventStats, EventSummary, EventUpdate, GeoPoint, NewUser, Order,
    OrderChange, OrderDetails, OrderRefusal, PlannedLine, SalesFigures, SeatsBack, SeatsBackCause,
    Shortage, Ticket, TicketDetails, TicketOrder, TicketStatus, Tier, TierDraft, TierOutcome,
    TierSummary, User, UserSummary, Venue, VenueFields, WriteOutcome,
};

macro_rules! user_columns {
    () => {
        "id, name, email, latitude, longitude, created_at, updated_at"
    };
}

macro_rules! event_columns {
    () => {
        "id, creator_id, title, description, start_time, end_time, total_tickets, tickets_sold, \
         latitude, longitude, venue_name, address_line1, address_line2, city, state, country, \
         postal_code, currency, max_tickets_per_user, created_at, updated_at"
    };
}

/// A ticket row (`t`) with its tier as its order recorded it (`oi`) and its user (`u`) and
/// event (`e`) summaries, joined by `ticket_joins`.
macro_rules! ticket_columns {
    () => {
        "t.id, t.user_id, t.event_id, t.order_id, t.tier_id, t.status, t.expires_at, t.paid_at, \
         t.created_at, t.updated_at, oi.tier_name, oi.unit_price_minor AS tier_price_minor, \
         u.name AS user_name, u.email AS user_email, e.title AS event_title, \
         e.start_time AS event_start_time, e.end_time AS event_end_time, \
         e.venue_name AS event_venue_name, e.city AS event_city, e.state AS event_state"
    };
}

macro_rules! ticket_joins {
    () => {
        " JOIN order_items oi ON oi.order_id = t.order_id AND oi.tier_id = t.tier_id \
          JOIN users u ON u.id = t.user_id JOIN events e ON e.id = t.event_id "
    };
}

// Statements both dialects run as they are (SQLite reads `$N` as the N-th parameter too).
// Write times are bound (`$N`) rather than taken from the database clock: SQLite has none that
// matches its microsecond columns.

/// `$1` id, `$2..$6` the new user (see [`bind_new_user`]), `$7` the write time.
pub(super) const INSERT_USER: &str = concat!(
    "INSERT INTO users (id, name, email, password_hash, latitude, longitude, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
    user_columns!()
);
pub(super) const FIND_USER: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
pub(super) const USER_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)";
/// `$1` id, `$2`/`$3` latitude/longitude, `$4` the write time.
pub(super) const SET_USER_LOCATION: &str = concat!(
    "UPDATE users SET latitude = $2, longitude = $3, updated_at = $4 WHERE id = $1 RETURNING ",
    user_columns!()
);
/// [`bind_draft`]'s `$1..$18`, then `$19` the write time.
pub(super) const INSERT_EVENT: &str = concat!(
    "INSERT INTO events (id, creator_id, title, description, start_time, end_time,
        total_tickets, latitude, longitude, venue_name, address_line1, address_line2,
        city, state, country, postal_code, currency, max_tickets_per_user, created_at,
        updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $19)
     RETURNING ",
    event_columns!()
);
/// `$1` id, `$2` event, `$3..$9` the tier (see [`bind_tier`]), `$10` position, `$11` write
/// time.
pub(super) const INSERT_TIER: &str = "INSERT INTO ticket_tiers
        (id, event_id, name, description, price_minor, quantity, max_per_order, sales_start,
         sales_end, position, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)";
/// `$1` id, `$2` event, `$3..$9` the tier (see [`bind_tier`]), `$10` write time.
const UPDATE_TIER: &str = "UPDATE ticket_tiers SET name = $3, description = $4, price_minor = $5,
        quantity = $6, max_per_order = $7, sales_start = $8, sales_end = $9, updated_at = $10
     WHERE id = $1 AND event_id = $2";
/// [`bind_draft`]'s `$1..$18`, then `$19` the write time; only the creator's own event.
pub(super) const UPDATE_EVENT: &str = concat!(
    "UPDATE events SET title = $3, description = $4, start_time = $5, end_time = $6,
        total_tickets = $7, latitude = $8, longitude = $9, venue_name = $10,
        address_line1 = $11, address_line2 = $12, city = $13, state = $14, country = $15,
        postal_code = $16, currency = $17, max_tickets_per_user = $18, updated_at = $19
     WHERE id = $1 AND creator_id = $2 RETURNING ",
    event_columns!()
);
pub(super) const FIND_EVENT: &str =
    concat!("SELECT ", event_columns!(), " FROM events WHERE id = $1");
pub(super) const EVENT_OWNER: &str = "SELECT creator_id FROM events WHERE id = $1";
pub(super) const SELECT_EVENTS: &str = concat!("SELECT ", event_columns!(), " FROM events e");
pub(super) const COUNT_EVENTS: &str = "SELECT count(*) FROM events e";
pub(super) const EVENTS_ORDER: &str = " ORDER BY e.start_time, e.id";
pub(super) const FIND_TICKET: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    " FROM tickets t",
    ticket_joins!(),
    "WHERE t.id = $1"
);
pub(super) const SELECT_TICKETS: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    ", count(*) OVER () AS total FROM tickets t",
    ticket_joins!()
);
pub(super) const COUNT_TICKETS: &str = "SELECT count(*) FROM tickets t";
pub(super) const TICKETS_ORDER: &str = " ORDER BY t.created_at DESC, t.id DESC";
/// Whose order, in which status, and whether `$2` (now) is past its deadline.
const ORDER_STATE: &str = "SELECT user_id, status, expires_at <= $2 FROM orders WHERE id = $1";
/// An order (`o`) with its event's summary (`e`).
macro_rules! order_columns {
    () => {
        "o.id, o.user_id, o.event_id, o.status, o.currency, o.total_minor, o.expires_at, \
         o.paid_at, o.created_at, o.updated_at, e.title AS event_title, \
         e.start_time AS event_start_time, e.end_time AS event_end_time, \
         e.venue_name AS event_venue_name, e.city AS event_city, e.state AS event_state \
         FROM orders o JOIN events e ON e.id = o.event_id"
    };
}
pub(super) const FIND_ORDER: &str = concat!("SELECT ", order_columns!(), " WHERE o.id = $1");
pub(super) const SELECT_ORDERS: &str =
    concat!("SELECT count(*) OVER () AS total, ", order_columns!());
pub(super) const COUNT_ORDERS: &str = "SELECT count(*) FROM orders o";
pub(super) const ORDERS_ORDER: &str = " ORDER BY o.created_at DESC, o.id DESC";
/// The items of some orders (the caller appends the `order_id` condition).
pub(super) const SELECT_ORDER_ITEMS: &str =
    "SELECT order_id, tier_id, tier_name, quantity, unit_price_minor FROM order_items";
pub(super) const ORDER_ITEMS_ORDER: &str = " ORDER BY order_id, line";
/// The tickets of some orders (the caller appends the `t.order_id` condition).
pub(super) const SELECT_ORDER_TICKETS: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    " FROM tickets t",
    ticket_joins!()
);
pub(super) const ORDER_TICKETS_ORDER: &str = " ORDER BY t.order_id, t.id";
/// `$1` ticket: its order, the order's owner and how many tickets the order holds.
pub(super) const TICKET_ORDER: &str = "SELECT t.order_id, o.user_id,
        (SELECT count(*) FROM tickets n WHERE n.order_id = t.order_id) AS tickets
     FROM tickets t JOIN orders o ON o.id = t.order_id WHERE t.id = $1";

/// A [`TICKET_ORDER`] row.
pub(super) fn ticket_order(
    (order_id, user_id, tickets): (Uuid, Uuid, i64),
) -> Result<TicketOrder, StoreError> {
    Ok(TicketOrder {
        order_id,
        user_id,
        tickets,
    })
}
/// `$1` order, `$2` status, `$3` now: the order's tickets take its new status.
pub(super) const SET_ORDER_TICKETS_STATUS: &str = "UPDATE tickets SET status = $2, updated_at = $3,
         paid_at = CASE WHEN $2 = 'paid' THEN $3 ELSE paid_at END
     WHERE order_id = $1";
/// `$1` order: the seats it holds, per event and tier.
const ORDER_SEATS: &str =
    "SELECT event_id, tier_id, CAST(quantity AS BIGINT) FROM order_items WHERE order_id = $1";
/// `$1` event, `$2` now: whether it started, is sold out, and has due holds to release.
pub(super) const SALE_AT_A_GLANCE: &str = "SELECT start_time <= $2, tickets_sold >= total_tickets,
        EXISTS (SELECT 1 FROM orders
                WHERE event_id = $1 AND status = 'reserved' AND expires_at <= $2)
     FROM events WHERE id = $1";

/// An order refused from [`SALE_AT_A_GLANCE`] alone, without a write or a lock: the event is
/// missing, started, or (when `sold_out_answers`) sold out with no due hold to release. `None`
/// when only the write path can tell (seats left, due holds, or a rule on a named tier that
/// must come first).
pub(super) fn refusal_at_a_glance(
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

/// The columns of a [`TierRow`], from `ticket_tiers`.
macro_rules! tier_columns {
    () => {
        "id, name, description, price_minor, quantity, sold, max_per_order, sales_start, \
         sales_end, position"
    };
}

/// `$1` event: its tiers in sale order.
pub(super) const SALE_TIERS: &str = concat!(
    "SELECT ",
    tier_columns!(),
    " FROM ticket_tiers WHERE event_id = $1 ORDER BY position"
);
pub(super) const PEEK_KEY: &str = "SELECT request_hash, outcome, created_at, lease_until
     FROM idempotency_keys WHERE user_id = $1 AND key = $2";
/// Records the outcome of the request holding claim `$4`: no row when the claim was lost.
const RECORD_OUTCOME: &str = "UPDATE idempotency_keys SET outcome = $3, lease_until = NULL
     WHERE user_id = $1 AND key = $2 AND claim = $4 AND outcome IS NULL
     RETURNING user_id";
pub(super) const RELEASE_IDEMPOTENCY_KEY: &str = "DELETE FROM idempotency_keys
     WHERE user_id = $1 AND key = $2 AND claim = $3 AND outcome IS NULL";
/// `$1` a time: the entries of the event change log and the seat ledger's record written
/// before it.
pub(super) const PURGE_CHANGE_LOGS: [&str; 2] = [
    "DELETE FROM event_changes WHERE changed_at < $1",
    "DELETE FROM seat_returns WHERE returned_at < $1",
];
pub(super) const PURGE_IDEMPOTENCY_KEYS: &str =
    "DELETE FROM idempotency_keys WHERE created_at < $1";

/// How a backend stores instants, and how it is turned back into one.
pub(super) trait StoredTime {
    fn into_utc(self) -> Result<DateTime<Utc>, StoreError>;
}

impl StoredTime for DateTime<Utc> {
    fn into_utc(self) -> Result<DateTime<Utc>, StoreError> {
        Ok(self)
    }
}

/// SQLite's timestamps: microseconds since the Unix epoch, so comparisons are exact integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, sqlx::Type)]
#[sqlx(transparent)]
pub(super) struct Micros(pub i64);

impl From<DateTime<Utc>> for Micros {
    fn from(at: DateTime<Utc>) -> Self {
        Micros(at.timestamp_micros())
    }
}

impl StoredTime for Micros {
    fn into_utc(self) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_micros(self.0)
            .ok_or_else(|| StoreError::Corrupt(format!("timestamp {}", self.0)))
    }
}

/// The parts of a backend the shared code needs to know: how it stores instants, and the
/// statements of the seat ledger ([`super::ledger`]) that only its dialect can write.
pub(super) trait Dialect: Database {
    type Time: StoredTime
        + From<DateTime<Utc>>
        + Unpin
        + Send
        + Sync
        + for<'q> Encode<'q, Self>
        + Type<Self>
        + for<'r> sqlx::Decode<'r, Self>;
    /// The case-insensitive LIKE operator.
    const ILIKE: &'static str;

    /// Marks the due holds of `events` (or of every event) expired, at most `limit` orders,
    /// oldest first, with their tickets; the seats they held, per event and tier. Orders
    /// another transaction holds are left to it.
    fn expire_due(
        conn: &mut Self::Connection,
        events: Option<&[Uuid]>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<SeatsBack>, StoreError>> + Send;

    /// Takes `freed` (merged, in lock order) off the sold counters: every event first, in id
    /// order, then the tiers.
    fn uncount_seats(
        conn: &mut Self::Connection,
        freed: &[SeatsBack],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends `back` to the `seat_returns` log.
    fn record_seats_back(
        conn: &mut Self::Connection,
        back: &[SeatsBack],
        cause: SeatsBackCause,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub(super) fn point(latitude: f64, longitude: f64) -> Result<GeoPoint, StoreError> {
    GeoPoint::new(latitude, longitude)
        .map_err(|_| StoreError::Corrupt(format!("coordinates {latitude}, {longitude}")))
}

pub(super) fn parse_status(raw: &str) -> Result<TicketStatus, StoreError> {
    TicketStatus::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("ticket status {raw:?}")))
}

#[derive(FromRow)]
pub(super) struct UserRow<T> {
    id: Uuid,
    name: String,
    email: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    created_at: T,
    updated_at: T,
}

impl<T: StoredTime> UserRow<T> {
    pub(super) fn into_user(self) -> Result<User, StoreError> {
        let location = match (self.latitude, self.longitude) {
            (Some(latitude), Some(longitude)) => Some(point(latitude, longitude)?),
            _ => None,
        };
        Ok(User {
            id: self.id,
            name: self.name,
            email: self.email,
            location,
            created_at: self.created_at.into_utc()?,
            updated_at: self.updated_at.into_utc()?,
        })
    }
}

/// A user with their password hash (for login only).
#[derive(FromRow)]
pub(super) struct CredentialsRow<T> {
    #[sqlx(flatten)]
    pub(super) user: UserRow<T>,
    pub(super) password_hash: String,
}

#[derive(FromRow)]
pub(super) struct EventRow<T> {
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
    created_at: T,
    updated_at: T,
}

/// The venue columns of an event row, read into the domain's unchecked venue fields (which
/// [`Venue::parse`] then checks, as it checks a client's).
pub(super) struct VenueColumns(VenueFields);

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

/// Every event search can return at `$1` (now).
pub(super) const SEARCHABLE_EVENTS: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE start_time > $1 AND tickets_sold < total_tickets"
);

/// What [`super::EventStore::searchable_events`] answers: `rows` read after the log stood at
/// `cursor`.
pub(super) fn searchable_events<T: StoredTime>(
    cursor: ChangeCursor,
    rows: Vec<EventRow<T>>,
) -> Result<SearchableEvents, StoreError> {
    Ok(SearchableEvents {
        cursor,
        events: rows
            .into_iter()
            .map(EventRow::into_event)
            .collect::<Result<_, _>>()?,
    })
}

/// What [`super::EventStore::event_changes`] answers: `changed` named in the log since the
/// last read, `rows` those of them that still exist.
pub(super) fn event_changes<T: StoredTime>(
    cursor: ChangeCursor,
    changed: Vec<Uuid>,
    rows: Vec<EventRow<T>>,
) -> Result<EventChanges, StoreError> {
    let current = rows
        .into_iter()
        .map(EventRow::into_event)
        .collect::<Result<Vec<_>, _>>()?;
    let found: std::collections::HashSet<Uuid> = current.iter().map(|event| event.id).collect();
    let deleted = changed
        .into_iter()
        .filter(|id| !found.contains(id))
        .collect();
    Ok(EventChanges {
        cursor,
        current,
        deleted,
    })
}

impl<T: StoredTime> EventRow<T> {
    pub(super) fn into_event(self) -> Result<Event, StoreError> {
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
            created_at: self.created_at.into_utc()?,
            updated_at: self.updated_at.into_utc()?,
        })
    }
}

#[derive(FromRow)]
pub(super) struct TicketRow<T> {
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
    event_title: String,
    event_start_time: T,
    event_end_time: T,
    event_venue_name: String,
    event_city: String,
    event_state: String,
}

impl<T: StoredTime> TicketRow<T> {
    pub(super) fn into_details(self) -> Result<TicketDetails, StoreError> {
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
            event: EventSummary {
                id: self.event_id,
                title: self.event_title,
                start_time: self.event_start_time.into_utc()?,
                end_time: self.event_end_time.into_utc()?,
                venue_name: self.event_venue_name,
                city: self.event_city,
                state: self.event_state,
            },
        })
    }
}

/// A row that also carries `count(*) OVER ()`.
#[derive(FromRow)]
pub(crate) struct Counted<Inner> {
    #[sqlx(flatten)]
    pub(crate) row: Inner,
    pub(crate) total: i64,
}

/// Binds `$1..$6` of [`INSERT_USER`].
pub(super) fn bind_new_user<'q, DB: Dialect, O>(
    query: QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>,
    user: &'q NewUser,
) -> QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>>
where
    Uuid: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(user.id)
        .bind(user.name.as_str())
        .bind(user.email.as_str())
        .bind(user.password_hash.as_str())
        .bind(user.location.map(|p| p.latitude()))
        .bind(user.location.map(|p| p.longitude()))
}

/// Binds `$1` id, `$2` creator and `$3..$18` the draft, in the column order of
/// [`INSERT_EVENT`] and [`UPDATE_EVENT`].
pub(super) fn bind_draft<'q, DB: Dialect, O>(
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
}

/// Binds `$3..$9` of [`INSERT_TIER`].
pub(super) fn bind_tier<'q, DB: Dialect>(
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

/// The `WHERE` clause of an event listing (table alias `e`).
pub(super) fn push_event_filter<'a, DB: Dialect>(
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
pub(super) fn push_event_count<'a, DB: Dialect>(
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

/// The `WHERE` clause of a buyer's tickets (`alias` `t`) or orders (`o`): theirs, in the
/// effective `status` (a reserved hold past its deadline counts as expired).
pub(super) fn push_buyer_filter<'a, DB: Dialect>(
    builder: &mut QueryBuilder<'a, DB>,
    alias: &str,
    user_id: Uuid,
    status: Option<TicketStatus>,
    now: DateTime<Utc>,
) where
    Uuid: Encode<'a, DB> + Type<DB>,
{
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

/// A page of [`EventFilter`]'s events, with the backend's row type `EventRow` in scope.
macro_rules! fetch_events_page {
    ($pool:expr, $filter:expr, $page:expr) => {{
        let (filter, now) = ($filter, chrono::Utc::now());
        fetch_page!(
            $pool,
            sql::SELECT_EVENTS,
            |builder| sql::push_event_count(builder, filter, now),
            |builder| sql::push_event_filter(builder, filter, now),
            sql::EVENTS_ORDER,
            $page,
            EventRow::into_event,
            count_apart,
        )
    }};
}

/// A page of [`super::BuyerFilter`]'s tickets, with the backend's `TicketRow` in scope.
macro_rules! fetch_tickets_page {
    ($pool:expr, $filter:expr) => {{
        let (filter, now) = ($filter, chrono::Utc::now());
        fetch_page!(
            $pool,
            sql::SELECT_TICKETS,
            sql::COUNT_TICKETS,
            |builder| sql::push_buyer_filter(builder, "t", filter.user_id, filter.status, now),
            sql::TICKETS_ORDER,
            filter.page,
            TicketRow::into_details,
        )
    }};
}

/// A page of a buyer's order rows, with the backend's row type `OrderRow` in scope.
macro_rules! fetch_orders_page {
    ($pool:expr, $filter:expr) => {{
        let (filter, now) = ($filter, chrono::Utc::now());
        fetch_page!(
            $pool,
            sql::SELECT_ORDERS,
            sql::COUNT_ORDERS,
            |builder| sql::push_buyer_filter(builder, "o", filter.user_id, filter.status, now),
            sql::ORDERS_ORDER,
            filter.page,
            |row: OrderRow| Ok(row),
        )
    }};
}

/// Runs `$sql` with the binds on `$pool` and maps the row, if any, with `$into`.
macro_rules! fetch_optional {
    ($pool:expr, $sql:expr, $into:expr $(, $bind:expr)* $(,)?) => {{
        sqlx::query_as($sql)
            $(.bind($bind))*
            .fetch_optional($pool)
            .await?
            .map($into)
            .transpose()
    }};
}

/// One page of `$select` narrowed by the `$filter` closure and ordered by `$order`, with the
/// number of rows matching the filter. A macro, not a generic function: sqlx's SQLite arguments
/// only fit a query built from a concrete backend's builder.
///
/// By default `$select` yields `count(*) OVER () AS total` (cheap where the filter leaves few
/// rows, as a buyer's tickets); an empty page past the end runs `$count` for the total. With
/// `count_apart` (the event listing, where the filter may match every event) the page is read
/// by the ordering index alone, and `$count` (then a function writing the whole count query)
/// runs only when the page cannot tell the total, so a page of 20 never reads every matching
/// row.
macro_rules! fetch_page {
    ($pool:expr, $select:expr, $count:expr, $filter:expr, $order:expr, $page:expr, $into_item:expr $(,)?) => {{
        let page: $crate::domain::PageRequest = $page;
        let mut builder = sqlx::QueryBuilder::new($select);
        ($filter)(&mut builder);
        builder
            .push($order)
            .push(" LIMIT ")
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.skip());
        let rows: Vec<$crate::store::sql::Counted<_>> =
            builder.build_query_as().fetch_all($pool).await?;
        match rows.first().map(|row| row.total) {
            Some(total) => {
                let items = rows
                    .into_iter()
                    .map(|counted| ($into_item)(counted.row))
                    .collect::<Result<_, StoreError>>()?;
                Ok(Page { items, total })
            }
            None => {
                let mut builder = sqlx::QueryBuilder::new($count);
                ($filter)(&mut builder);
                let total: i64 = builder.build_query_scalar().fetch_one($pool).await?;
                Ok(Page {
                    items: Vec::new(),
                    total,
                })
            }
        }
    }};
    ($pool:expr, $select:expr, $count:expr, $filter:expr, $order:expr, $page:expr, $into_item:expr, count_apart $(,)?) => {{
        let page: $crate::domain::PageRequest = $page;
        let mut builder = sqlx::QueryBuilder::new($select);
        ($filter)(&mut builder);
        builder
            .push($order)
            .push(" LIMIT ")
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.skip());
        let rows: Vec<_> = builder.build_query_as().fetch_all($pool).await?;
        let read = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        // A page that is neither full nor empty ends the listing: it tells the total.
        let total = if read > 0 && read < page.limit() {
            page.skip().saturating_add(read)
        } else {
            let mut builder = sqlx::QueryBuilder::new("");
            ($count)(&mut builder);
            let total: i64 = builder.build_query_scalar().fetch_one($pool).await?;
            // Counted as the difference of two counts: an empty range comes out ≤ 0.
            total.max(0)
        };
        let items = rows
            .into_iter()
            .map($into_item)
            .collect::<Result<_, StoreError>>()?;
        Ok(Page { items, total })
    }};
}

/// Escapes LIKE wildcards so user text matches literally (with `ESCAPE '\'`).
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A keyed write's outcome as the store records it.
pub(super) fn outcome_text(outcome: &WriteOutcome) -> Result<String, StoreError> {
    serde_json::to_string(outcome)
        .map_err(|error| StoreError::Corrupt(format!("write outcome: {error}")))
}

/// Records a keyed write's `outcome` on the key it holds, inside the write's transaction;
/// `false` when the key is no longer the request's (the caller rolls back).
pub(super) async fn record_outcome_on<DB: Dialect>(
    conn: &mut DB::Connection,
    held: &HeldKey,
    outcome: &WriteOutcome,
) -> Result<bool, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid,): FromRow<'r, DB::Row>,
{
    let recorded: Option<(Uuid,)> = sqlx::query_as(RECORD_OUTCOME)
        .bind(held.user_id)
        .bind(held.key.as_str())
        .bind(outcome_text(outcome)?)
        .bind(held.claim)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(recorded.is_some())
}

/// How long a key is remembered.
pub(super) const KEY_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A stored idempotency key, read by [`PEEK_KEY`].
#[derive(FromRow)]
pub(super) struct KeyRow<T> {
    request_hash: String,
    outcome: Option<String>,
    created_at: T,
    lease_until: Option<T>,
}

impl<T: StoredTime> KeyRow<T> {
    /// What `row` says about a new request with the same key at `now`; `None` when the key
    /// may be claimed (there is none, it is forgotten, or its holder's lease passed).
    pub(super) fn held(
        row: Option<Self>,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyClaim>, StoreError> {
        let Some(row) = row else {
            return Ok(None);
        };
        if row.created_at.into_utc()? <= now - KEY_LIFETIME {
            return Ok(None);
        }
        if row.request_hash != request_hash {
            return Ok(Some(IdempotencyClaim::Mismatch));
        }
        if let Some(outcome) = row.outcome {
            let outcome = serde_json::from_str(&outcome)
                .map_err(|error| StoreError::Corrupt(format!("write outcome: {error}")))?;
            return Ok(Some(IdempotencyClaim::Completed(outcome)));
        }
        let leased = match row.lease_until {
            Some(lease_until) => lease_until.into_utc()? > now,
            None => false,
        };
        Ok(leased.then_some(IdempotencyClaim::InProgress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_match_literally() {
        assert_eq!(escape_like(r"50%_off\"), r"50\%\_off\\");
    }

    #[test]
    fn micros_round_trip() {
        let now = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        assert_eq!(Micros::from(now).into_utc().unwrap(), now);
        assert!(Micros(i64::MAX).into_utc().is_err());
    }
}

#[derive(FromRow)]
pub(super) struct TierRow<T> {
    id: Uuid,
    name: String,
    description: Option<String>,
    price_minor: i64,
    quantity: Option<i32>,
    sold: i32,
    max_per_order: Option<i32>,
    sales_start: Option<T>,
    sales_end: Option<T>,
    position: i32,
}

impl<T: StoredTime> TierRow<T> {
    pub(super) fn into_tier(self) -> Result<Tier, StoreError> {
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
pub(super) async fn tiers_on<DB: Dialect>(
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

/// `$1` order, `$2` owner, `$3` now: the order's new status, while it is reserved and its hold
/// has not passed; a row when it changed.
fn order_action_statement(action: OrderAction) -> &'static str {
    match action {
        OrderAction::Pay => {
            "UPDATE orders SET status = 'paid', paid_at = $3, updated_at = $3
             WHERE id = $1 AND user_id = $2 AND status = 'reserved' AND expires_at > $3
             RETURNING id"
        }
        OrderAction::Cancel => {
            "UPDATE orders SET status = 'cancelled', updated_at = $3
             WHERE id = $1 AND user_id = $2 AND status = 'reserved' AND expires_at > $3
             RETURNING id"
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
    for<'r> (Uuid,): FromRow<'r, DB::Row>,
    for<'r> (Uuid, Uuid, i64): FromRow<'r, DB::Row>,
{
    let changed: Option<(Uuid,)> = sqlx::query_as(order_action_statement(action))
        .bind(order_id)
        .bind(user_id)
        .bind(DB::Time::from(now))
        .fetch_optional(&mut *conn)
        .await?;
    if changed.is_none() {
        return Ok(false);
    }
    if action == OrderAction::Cancel {
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
        ledger::release::<DB>(conn, freed, SeatsBackCause::Cancelled, now).await?;
    }
    let status = match action {
        OrderAction::Pay => TicketStatus::Paid,
        OrderAction::Cancel => TicketStatus::Cancelled,
    };
    sqlx::query(SET_ORDER_TICKETS_STATUS)
        .bind(order_id)
        .bind(status.as_str())
        .bind(DB::Time::from(now))
        .execute(&mut *conn)
        .await?;
    Ok(true)
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
pub(super) async fn change_order_on<DB: Dialect>(
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
    for<'r> (Uuid,): FromRow<'r, DB::Row>,
    for<'r> (Uuid, Uuid, i64): FromRow<'r, DB::Row>,
    for<'r> (Uuid, String, bool): FromRow<'r, DB::Row>,
{
    if apply_order_action::<DB>(conn, order_id, user_id, action, now).await? {
        return Ok(None);
    }
    let refusal = change_refusal::<DB, OrderDetails>(conn, ORDER_STATE, order_id, user_id, now);
    Ok(Some(refusal.await?))
}

#[derive(FromRow)]
pub(super) struct OrderRow<T> {
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
    event_title: String,
    event_start_time: T,
    event_end_time: T,
    event_venue_name: String,
    event_city: String,
    event_state: String,
}

impl<T> OrderRow<T> {
    pub(super) fn id(&self) -> Uuid {
        self.id
    }
}

#[derive(FromRow)]
pub(super) struct ItemRow {
    order_id: Uuid,
    tier_id: Uuid,
    tier_name: String,
    quantity: i32,
    unit_price_minor: i64,
}

/// Orders with their items and tickets (each list ordered within its order).
pub(super) fn assemble_orders<T: StoredTime>(
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
                },
                event: EventSummary {
                    id: row.event_id,
                    title: row.event_title,
                    start_time: row.event_start_time.into_utc()?,
                    end_time: row.event_end_time.into_utc()?,
                    venue_name: row.event_venue_name,
                    city: row.event_city,
                    state: row.event_state,
                },
            })
        })
        .collect()
}

/// `$1` event: its creator, capacity and tickets sold ([`EVENT_SALE_FOR_UPDATE`] locks the row
/// on PostgreSQL).
pub(super) const EVENT_SALE: &str =
    "SELECT creator_id, total_tickets, tickets_sold FROM events WHERE id = $1";
pub(super) const EVENT_SALE_FOR_UPDATE: &str =
    "SELECT creator_id, total_tickets, tickets_sold FROM events WHERE id = $1 FOR UPDATE";

/// Replaces the creator-controlled fields of event `id` inside the caller's transaction, after
/// `sale_sql` (one of [`EVENT_SALE`]) has read it: a total below the tickets sold is refused,
/// and seats a raised total puts on sale go through the seat ledger.
pub(super) async fn update_event_on<DB: Dialect>(
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
    for<'r> (Uuid, i32, i32): FromRow<'r, DB::Row>,
    for<'r> EventRow<DB::Time>: FromRow<'r, DB::Row>,
{
    let sale: Option<(Uuid, i32, i32)> = sqlx::query_as(sale_sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let total_before = match sale {
        None => return Ok(EventUpdate::NotFound),
        Some((owner, ..)) if owner != creator_id => return Ok(EventUpdate::NotCreator),
        Some((_, _, sold)) if draft.total_tickets() < sold => return Ok(EventUpdate::BelowSold),
        Some((_, total, _)) => total,
    };
    let row: EventRow<DB::Time> = bind_draft(sqlx::query_as(UPDATE_EVENT), id, creator_id, draft)
        .bind(DB::Time::from(now))
        .fetch_one(&mut *conn)
        .await?;
    let back = SeatsBack {
        event_id: id,
        tier_id: None,
        seats: i64::from(draft.total_tickets()) - i64::from(total_before),
    };
    ledger::capacity_back::<DB>(conn, back, SeatsBackCause::CapacityRaised, now).await?;
    Ok(EventUpdate::Done(Box::new(row.into_event()?)))
}

/// `$1` event: its creator and seats left ([`EVENT_OWNER_AND_SEATS_FOR_UPDATE`] locks the
/// row on PostgreSQL, as every tier counter change does).
pub(super) const EVENT_OWNER_AND_SEATS: &str =
    "SELECT creator_id, CAST(total_tickets - tickets_sold AS BIGINT) FROM events WHERE id = $1";
pub(super) const EVENT_OWNER_AND_SEATS_FOR_UPDATE: &str = "SELECT creator_id,
        CAST(total_tickets - tickets_sold AS BIGINT) FROM events WHERE id = $1 FOR UPDATE";

/// Applies `change` to the tiers of `event_id` inside the caller's transaction, after
/// `owner_sql` (one of [`EVENT_OWNER_AND_SEATS`]) has read the event. A tier being deleted
/// must have had the event's due holds released first, so that `sold` counts only live
/// tickets. Seats a new or raised tier puts on sale go through the seat ledger.
pub(super) async fn change_tier_on<DB: Dialect>(
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
            return Ok(TierOutcome::Deleted);
        }
    };
    let tiers = tiers_on::<DB>(conn, event_id).await?;
    let Some(tier) = tiers.into_iter().find(|tier| tier.id == saved) else {
        return Err(StoreError::Corrupt("a saved tier vanished".into()));
    };
    let back = SeatsBack {
        event_id,
        tier_id: Some(tier.id),
        seats: tier.available(seats_left) - was_available,
    };
    ledger::capacity_back::<DB>(conn, back, cause, now).await?;
    Ok(TierOutcome::Saved(Box::new(tier)))
}

/// `$1` event, `$2` now: live reservations, payments and revenue (at the orders' prices) of
/// each tier that has any.
const TIER_SALES: &str = "SELECT t.tier_id,
        CAST(SUM(CASE WHEN t.status = 'reserved' AND t.expires_at > $2 THEN 1 ELSE 0 END)
             AS BIGINT) AS reserved,
        CAST(SUM(CASE WHEN t.status = 'paid' THEN 1 ELSE 0 END) AS BIGINT) AS paid,
        CAST(SUM(CASE WHEN t.status = 'paid' THEN oi.unit_price_minor ELSE 0 END) AS BIGINT)
             AS revenue_minor
     FROM tickets t JOIN order_items oi ON oi.order_id = t.order_id AND oi.tier_id = t.tier_id
     WHERE t.event_id = $1 GROUP BY t.tier_id";

/// An event's sales for its creator; `None` when there is no such event.
pub(super) async fn event_stats_on<DB: Dialect>(
    conn: &mut DB::Connection,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<(Uuid, EventStats)>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid, String, i32, i32): FromRow<'r, DB::Row>,
    for<'r> (Uuid, i64, i64, i64): FromRow<'r, DB::Row>,
    for<'r> TierRow<DB::Time>: FromRow<'r, DB::Row>,
{
    let event: Option<(Uuid, String, i32, i32)> = sqlx::query_as(
        "SELECT creator_id, currency, total_tickets, tickets_sold FROM events WHERE id = $1",
    )
    .bind(event_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((creator_id, currency, total_tickets, tickets_sold)) = event else {
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
            tiers,
        },
    )))
}
