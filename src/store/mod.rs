//! Persistence behind one interface, with a PostgreSQL/PostGIS and an SQLite implementation.
//!
//! The interface speaks domain types and is split by area ([`UserStore`], [`EventStore`],
//! [`TicketStore`], [`PaymentStore`], [`CheckinListStore`], [`ScanStore`], [`WaitlistStore`], [`IdempotencyStore`], with [`Infrastructure`] apart). Every atomicity
//! guarantee (no oversell, pay-vs-expire, counters that match rows) lives inside one call here,
//! so no caller can get it wrong. What does not differ between the SQL dialects (row mapping,
//! column lists, filters, paging) is written once in [`sql`]; the backend files keep only the
//! SQL that differs.

#[macro_use]
pub(crate) mod sql;
mod batch;
mod error;
mod ledger;
#[macro_use]
mod order_batch;
pub mod checkin_lists;
pub mod payments;
mod postgres;
pub mod scans;
mod sqlite;
pub mod waitlist;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::domain::{
    Event, EventAvailability, EventDelete, EventDetails, EventDraft, EventStats, EventUpdate,
    GeoPoint, NearbyEvent, NewEvent, NewOrder, NewUser, OrderChange, OrderDetails, OrderOutcome,
    PageRequest, RadiusKm, ReissuedCode, TicketDetails, TicketOrder, TicketStatus, TierDraft,
    TierOutcome, User, WriteOutcome,
};

pub use checkin_lists::CheckinListStore;
pub use error::StoreError;
pub use payments::PaymentStore;
pub use scans::{BundleRequest, RecordScan, ScanStore};
pub use waitlist::{WaitlistFilter, WaitlistStore};

pub type StoreResult<T> = Result<T, StoreError>;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Every area of the store in one object.
pub trait Store:
    Infrastructure
    + UserStore
    + EventStore
    + TicketStore
    + PaymentStore
    + CheckinListStore
    + ScanStore
    + WaitlistStore
    + IdempotencyStore
    + 'static
{
}

impl<T> Store for T where
    T: Infrastructure
        + UserStore
        + EventStore
        + TicketStore
        + PaymentStore
        + CheckinListStore
        + ScanStore
        + WaitlistStore
        + IdempotencyStore
        + 'static
{
}

pub type DynStore = Arc<dyn Store>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How to reach the database and how long to wait for it.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub url: String,
    pub max_connections: u32,
    /// Bound on waiting for a pooled connection: when the database is away, requests fail
    /// fast instead of piling up.
    pub acquire_timeout: Duration,
}

/// One page of a listing plus the number of rows matching the filter.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[derive(Debug, Clone)]
pub struct EventFilter {
    pub upcoming_only: bool,
    /// Case-insensitive substring of title, venue name or city.
    pub text: Option<String>,
    pub starts_after: Option<DateTime<Utc>>,
    pub starts_before: Option<DateTime<Utc>>,
}

/// A change to an event's tiers.
#[derive(Debug, Clone, Copy)]
pub enum TierChange<'a> {
    Add(&'a TierDraft),
    Update(Uuid, &'a TierDraft),
    Delete(Uuid),
}

/// What is done to a placed order, by its buyer or, for a refund, by the event's creator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    /// The buyer pays a reserved order.
    Pay,
    /// The buyer cancels a reserved order.
    Cancel,
    /// The event's creator refunds a paid order: cancelled, its money and seats given back.
    Refund,
}

/// How a reissue of a ticket's code ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeReissue {
    /// The ticket's new code; the lower serials are revoked.
    Done(ReissuedCode),
    NotFound,
    NotOwner,
    NotPaid,
    /// Reissued as many times as a day allows, for `retry_after` more.
    TooMany {
        retry_after: Duration,
    },
}

/// One buyer's tickets or orders; `status` filters on the effective status.
#[derive(Debug, Clone)]
pub struct BuyerFilter {
    pub user_id: Uuid,
    pub status: Option<TicketStatus>,
    pub page: PageRequest,
}

/// Upcoming, not sold-out events within `radius` of `center`, nearest first.
#[derive(Debug, Clone)]
pub struct NearbyQuery {
    pub center: GeoPoint,
    pub radius: RadiusKm,
    pub page: PageRequest,
}

/// How long the log of event changes keeps an entry: a reader further behind than that loads
/// everything anew rather than catch up.
pub const CHANGE_LOG_KEPT: Duration = Duration::from_secs(3600);

/// Where a reader stands in the log of event changes; only the store that gave it knows what
/// it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeCursor(Position);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// SQLite: the last `seq` read.
    Seq(i64),
    /// PostgreSQL: the snapshot (`pg_snapshot` text) the last read saw.
    Snapshot(String),
}

impl ChangeCursor {
    /// A cursor of the other backend (never given out) reads from the start.
    fn seq(&self) -> i64 {
        match &self.0 {
            Position::Seq(seq) => *seq,
            Position::Snapshot(_) => 0,
        }
    }

    fn snapshot(&self) -> &str {
        match &self.0 {
            Position::Snapshot(snapshot) => snapshot,
            Position::Seq(_) => "1:1:",
        }
    }
}

/// The events search can return (upcoming, not sold out) and the point in the change log
/// that their read includes every change before.
#[derive(Debug)]
pub struct SearchableEvents {
    pub cursor: ChangeCursor,
    pub events: Vec<Event>,
}

/// The events changed since a cursor, as they are now, and the cursor to read from next.
#[derive(Debug)]
pub struct EventChanges {
    pub cursor: ChangeCursor,
    pub current: Vec<Event>,
    pub deleted: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// The key is new (or its last holder died): the caller holds it and does the work.
    Claimed,
    /// A request with this key already succeeded: what it did.
    Completed(WriteOutcome),
    /// A request with this key is still being processed.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
    /// The user already holds as many keys as allowed.
    QuotaExceeded,
}

/// How a request claims a key.
#[derive(Debug, Clone, Copy)]
pub struct ClaimTerms {
    /// Names this request as the holder: only it may record the key's answer.
    pub claim: Uuid,
    /// How long the claim holds without an answer; after that a retry may take it over.
    pub lease: Duration,
    /// Keys the user may hold over 24 h.
    pub quota: u32,
}

/// A key this request holds. A keyed write that succeeds records its [`WriteOutcome`] on the
/// key inside the transaction that does the write, so a write that commits can always be
/// replayed and one that does not leaves the key unanswered; recording fails with
/// [`StoreError::ClaimLost`] (and the write rolls back, or, in a batch, is not made) when the key
/// is no longer this request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldKey {
    pub user_id: Uuid,
    pub key: String,
    pub claim: Uuid,
}

/// How a keyed order holds its `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUse {
    /// Claimed beforehand ([`IdempotencyStore::claim_key`]).
    Held(HeldKey),
    /// Not claimed yet: the order's own transaction writes the key together with the order's
    /// outcome (a refused order writes none), unless the key is in use (known, or past the
    /// user's quota), when the order fails with [`StoreError::KeyInUse`] having done nothing.
    /// A new key so costs no round trip, nor row version, of its own.
    New(NewKey),
}

/// Whether an order with `key` may be refused before its batch (from the sold-out memory, or
/// a glance at its event). Not with a new key: its batch looks at the key first, under the
/// event's lock, so that a retry of an order already placed (or still being placed) with that
/// key gets the placed order, never a refusal.
fn may_refuse_early(key: Option<&KeyUse>) -> bool {
    !matches!(key, Some(KeyUse::New(_)))
}

impl KeyUse {
    pub fn held(&self) -> &HeldKey {
        match self {
            KeyUse::Held(held) => held,
            KeyUse::New(new) => &new.held,
        }
    }
}

/// A key to claim inside a write's transaction, on the terms [`IdempotencyStore::claim_key`]
/// would claim it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub held: HeldKey,
    pub request_hash: String,
    pub lease: Duration,
    pub quota: u32,
}

impl HeldKey {
    pub fn request_key(&self) -> RequestKey<'_> {
        RequestKey {
            user_id: self.user_id,
            key: &self.key,
        }
    }
}

/// What a process hears of availability changes committed by any process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvailabilityNews {
    /// The event's availability version went up.
    Changed(Uuid),
    /// Announcements may have been missed (the listening connection was lost and is back):
    /// every watched event may have changed.
    Missed,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}

/// What every backend needs beside the data: identity, health and shutdown.
#[async_trait]
pub trait Infrastructure: Send + Sync {
    fn backend(&self) -> Backend;
    /// The SQLite database file (secrets tied to the database are kept beside it).
    fn database_file(&self) -> Option<&std::path::Path> {
        None
    }
    fn pool_stats(&self) -> PoolStats;
    /// Changes when events may have changed (SQLite: any commit of this process; PostgreSQL: a
    /// notification, from any process, of a change search can see): a prompt to read
    /// [`EventStore::event_changes`], which is complete without it.
    fn change_announcements(&self) -> watch::Receiver<()>;
    /// Availability versions raised by any process, as PostgreSQL announces them at commit
    /// (`nearbytix_availability`). SQLite announces none: its writers all live in this
    /// process, which tells its streams itself; the channel is then closed at once.
    fn availability_news(&self) -> broadcast::Receiver<AvailabilityNews> {
        broadcast::channel(1).1
    }
    /// A real round trip to the database.
    async fn ping(&self) -> StoreResult<()>;
    /// Whether the database takes writes now; a server that answers reads may not (SQLite on
    /// a full disk or a read-only file).
    async fn probe_write(&self) -> StoreResult<()> {
        self.ping().await
    }
    async fn close(&self);
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn insert_user(&self, user: &NewUser) -> StoreResult<User>;
    /// The user and their password hash, by (lower-cased) e-mail.
    async fn find_credentials(&self, email: &str) -> StoreResult<Option<(User, String)>>;
    async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn user_exists(&self, id: Uuid) -> StoreResult<bool>;
    /// `None` when the user does not exist.
    async fn set_user_location(&self, id: Uuid, location: GeoPoint) -> StoreResult<Option<User>>;
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores a new event (with a fresh id) created by `creator_id`, with its tiers.
    async fn insert_event(&self, creator_id: Uuid, event: &NewEvent) -> StoreResult<EventDetails>;
    /// Adds, replaces or deletes a tier of an event of `creator_id`, under the event's lock:
    /// a new tier goes last; a replacement may not go below the tickets the tier sold; a tier is
    /// deleted only without reserved or paid tickets (due holds released first) and when it is
    /// not the event's last.
    async fn change_tier(
        &self,
        event_id: Uuid,
        creator_id: Uuid,
        change: TierChange<'_>,
    ) -> StoreResult<TierOutcome>;
    /// What an event sold, with its creator's id; `None` when there is no such event.
    async fn event_stats(&self, event_id: Uuid) -> StoreResult<Option<(Uuid, EventStats)>>;
    /// An event with its tiers in sale order, in one round trip.
    async fn find_event(&self, id: Uuid) -> StoreResult<Option<EventDetails>>;
    /// An event with its tiers, its availability version and its waiting line, in one round
    /// trip.
    async fn event_availability(&self, id: Uuid) -> StoreResult<Option<EventAvailability>>;
    /// Raises the availability version of every event with a clock instant (its start, a
    /// tier's sales start or end) in `(since, now]` that no process raised it for yet, once per
    /// instant whichever processes call this; how many events.
    async fn bump_clock_instants(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Replaces the creator-controlled fields, refusing a total below the tickets sold.
    async fn update_event(
        &self,
        id: Uuid,
        creator_id: Uuid,
        draft: &EventDraft,
    ) -> StoreResult<EventUpdate>;
    /// Deletes an event that has no reserved or paid tickets (due holds are released first).
    async fn delete_event(&self, id: Uuid, creator_id: Uuid) -> StoreResult<EventDelete>;
    async fn list_events(
        &self,
        filter: &EventFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Event>>;
    async fn nearby_events(&self, query: &NearbyQuery) -> StoreResult<Page<NearbyEvent>>;
    /// The descriptions of those of `ids` that exist and have one (at most a page's worth).
    async fn event_descriptions(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, String>>;
    /// Every event search can return now, for an in-memory read model.
    async fn searchable_events(&self) -> StoreResult<SearchableEvents>;
    /// The events changed since `since` (created, updated, seats sold or released, deleted).
    /// Reading again from the returned cursor misses no committed change, whatever order
    /// concurrent transactions commit in; a change may be seen twice.
    async fn event_changes(&self, since: ChangeCursor) -> StoreResult<EventChanges>;
    /// Forgets change log entries written before `older_than`.
    async fn purge_event_changes(&self, older_than: DateTime<Utc>) -> StoreResult<u64>;
    /// Folds the `buyer_history` rows of at most `users` buyers with rows added since the last
    /// fold into one row each; how many buyers it folded.
    async fn fold_buyer_history(&self, users: i64) -> StoreResult<u64>;
}

#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Places an order all or nothing: checks every rule of [`crate::domain::SaleState::plan`]
    /// and takes the seats (event and tiers) in one transaction, together with whatever other
    /// orders arrive at the same time; reclaims the event's due holds before answering that
    /// seats are short. A placed order with a `key` records its outcome on it in that
    /// transaction (a [`KeyUse::New`] key is written there, with it).
    async fn place_order(
        &self,
        order: &NewOrder,
        key: Option<&KeyUse>,
    ) -> StoreResult<OrderOutcome>;
    /// The order a ticket belongs to, with its owner and size.
    async fn ticket_order(&self, ticket_id: Uuid) -> StoreResult<Option<TicketOrder>>;
    async fn find_ticket(&self, id: Uuid) -> StoreResult<Option<TicketDetails>>;
    /// A user's tickets, newest first; `status` filters on the effective status.
    async fn user_tickets(&self, filter: &BuyerFilter) -> StoreResult<Page<TicketDetails>>;
    /// Pays or cancels a whole order of `user_id` (reserved, hold not passed), or refunds a
    /// paid one when `user_id` created its event: the order and its tickets change together; a
    /// cancellation or refund gives every seat back at once (through the seat ledger). A done
    /// change with a `key` records its outcome on it in its transaction.
    async fn change_order(
        &self,
        order_id: Uuid,
        user_id: Uuid,
        action: OrderAction,
        key: Option<&HeldKey>,
    ) -> StoreResult<OrderChange>;
    async fn find_order(&self, id: Uuid) -> StoreResult<Option<OrderDetails>>;
    /// A ticket's code serial (1 until reissued); `None` when there is no such ticket.
    async fn ticket_code_serial(&self, ticket_id: Uuid) -> StoreResult<Option<i32>>;
    /// Reissues the code of a paid ticket of `user_id` (its serial goes up by one) unless it
    /// was reissued `per_day` times in the last 24 h; with a `key`, a done reissue's outcome is
    /// recorded on it in the same transaction.
    async fn reissue_code(
        &self,
        ticket_id: Uuid,
        user_id: Uuid,
        per_day: i64,
        signing_key: u16,
        key: Option<&HeldKey>,
    ) -> StoreResult<CodeReissue>;
    /// A user's orders, newest first; `status` filters on the effective status.
    async fn user_orders(&self, filter: &BuyerFilter) -> StoreResult<Page<OrderDetails>>;
    /// Expires up to `batch_size` due orders with their tickets and gives their seats back, in
    /// one transaction. Returns how many tickets were expired.
    async fn expire_due_tickets(&self, batch_size: i64) -> StoreResult<u64>;
}

/// A request's `Idempotency-Key`, which is scoped to the user who sent it.
#[derive(Debug, Clone, Copy)]
pub struct RequestKey<'a> {
    pub user_id: Uuid,
    pub key: &'a str,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Takes `key` for the request described by `request_hash`, or says what holds it. A
    /// claim whose lease passed without an answer is taken over; a key older than 24 h is
    /// forgotten and taken anew.
    async fn claim_key(
        &self,
        key: RequestKey<'_>,
        request_hash: &str,
        terms: ClaimTerms,
    ) -> StoreResult<IdempotencyClaim>;
    /// What holds `key` now, read without writing; `None` when it may be claimed.
    async fn peek_key(
        &self,
        key: RequestKey<'_>,
        request_hash: &str,
    ) -> StoreResult<Option<IdempotencyClaim>>;
    /// Gives up a claim whose work did not commit, so a retry may run at once.
    async fn release_key(&self, held: &HeldKey) -> StoreResult<()>;
    async fn purge_keys(&self, older_than: DateTime<Utc>) -> StoreResult<u64>;
}

/// Opens the store named by `options.url` and applies its migrations.
pub async fn connect(options: &StoreOptions) -> anyhow::Result<DynStore> {
    let url = options.url.trim();
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(options)
            .await
            .with_context(|| format!("opening SQLite database {url}"))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(options).await?;
        Ok(Arc::new(store))
    } else {
        anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres:// (got {url:?})")
    }
}
