//! The SQL both dialects share, by area — [`users`], [`events`], [`tiers`], [`orders`] (and
//! tickets), [`idempotency`], [`changes`] (the change feed) — and, here, the plumbing: how a
//! backend stores instants ([`StoredTime`]), what only its dialect can write ([`Dialect`]),
//! and paging. The backend files keep only the SQL that differs.
//!
//! Statements run as they are on both dialects (SQLite reads `$N` as the N-th parameter too).
//! Write times are bound (`$N`) rather than taken from the database clock: SQLite has none that
//! matches its microsecond columns.

#[macro_use]
mod users;
#[macro_use]
mod events;
#[macro_use]
mod tiers;
#[macro_use]
mod orders;
mod changes;
mod checkin;
mod idempotency;
#[macro_use]
mod payments;
#[macro_use]
mod checkin_lists;
#[macro_use]
mod scans;
#[macro_use]
mod waitlist;
#[macro_use]
mod waitlist_store;

pub(super) use self::changes::*;
pub(super) use self::checkin::*;
pub(super) use self::checkin_lists::*;
pub(super) use self::events::*;
pub(super) use self::idempotency::*;
pub(super) use self::orders::*;
pub(super) use self::payments::*;
pub(super) use self::scans::*;
pub(super) use self::tiers::*;
pub(super) use self::users::*;
pub(super) use self::waitlist::*;

use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, FromRow, Type};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{GeoPoint, SeatsBack, SeatsBackCause, TicketStatus};

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
    /// Appended to a SELECT of rows to change: locks them until commit (SQLite's write
    /// transaction holds the whole database).
    const LOCK_ROW: &'static str;
    /// As [`Self::LOCK_ROW`], for rows whose key stays: foreign-key checks on them still pass
    /// (PostgreSQL's `FOR NO KEY UPDATE`).
    const LOCK_ROW_NO_KEY: &'static str;
    /// Appended to a SELECT of work rows several processes share: locks them, skipping those
    /// another transaction holds.
    const SKIP_LOCKED: &'static str;

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

    /// The rows of [`SCANNED_TICKETS`] for `ids` (sorted and distinct) that exist,
    /// locked until commit, in id order (as every batch of scans locks them).
    fn lock_scanned_tickets(
        conn: &mut Self::Connection,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<Vec<ScannedTicketRow<Self::Time>>, sqlx::Error>> + Send;

    /// The waiting list's offer step on `events` (sorted, distinct), under their locks
    /// ([`waitlist_store!`]); how many offers it made.
    fn offer_to_line(
        conn: &mut Self::Connection,
        events: &[Uuid],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// The waiting entries of tier `tier` close (`tier_unavailable`: it was deleted).
    fn close_tier_line(
        conn: &mut Self::Connection,
        tier: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The waiting entries of event `event` close if its list is disabled
    /// (`waitlist_disabled`).
    fn close_disabled_line(
        conn: &mut Self::Connection,
        event: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Offers whose orders expired end `expired`.
    fn end_lapsed_offers(
        conn: &mut Self::Connection,
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

/// A row that also carries `count(*) OVER ()`.
#[derive(FromRow)]
pub(crate) struct Counted<Inner> {
    #[sqlx(flatten)]
    pub(crate) row: Inner,
    pub(crate) total: i64,
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
