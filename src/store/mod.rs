//! Persistence behind one interface, with a PostgreSQL/PostGIS and an SQLite implementation.
//!
//! The interface speaks domain types. Every atomicity guarantee (no oversell, pay-vs-expire,
//! counters that match rows) lives inside one call here, so no caller can get it wrong.

/// Column lists shared by both stores (the SQL dialects agree on them).
macro_rules! user_columns {
    () => {
        "id, name, email, latitude, longitude, created_at, updated_at"
    };
}

/// Event columns, prefixed (`event_columns!("e.")`) or bare for RETURNING clauses.
macro_rules! event_columns {
    ($p:literal) => {
        concat!(
            $p,
            "id",
            ", ",
            $p,
            "creator_id",
            ", ",
            $p,
            "title",
            ", ",
            $p,
            "description",
            ", ",
            $p,
            "start_time",
            ", ",
            $p,
            "end_time",
            ", ",
            $p,
            "total_tickets",
            ", ",
            $p,
            "tickets_sold",
            ", ",
            $p,
            "latitude",
            ", ",
            $p,
            "longitude",
            ", ",
            $p,
            "venue_name",
            ", ",
            $p,
            "address_line1",
            ", ",
            $p,
            "address_line2",
            ", ",
            $p,
            "city",
            ", ",
            $p,
            "state",
            ", ",
            $p,
            "country",
            ", ",
            $p,
            "postal_code",
            ", ",
            $p,
            "created_at",
            ", ",
            $p,
            "updated_at"
        )
    };
}

/// A ticket row (`t`) with its user (`u`) and event (`e`) summaries, joined by `ticket_joins`.
macro_rules! ticket_columns {
    () => {
        "t.id, t.user_id, t.event_id, t.status, t.expires_at, t.paid_at, t.created_at, \
         t.updated_at, u.name AS user_name, u.email AS user_email, e.title AS event_title, \
         e.start_time AS event_start_time, e.end_time AS event_end_time, \
         e.venue_name AS event_venue_name, e.city AS event_city, e.state AS event_state"
    };
}

macro_rules! ticket_joins {
    () => {
        " JOIN users u ON u.id = t.user_id JOIN events e ON e.id = t.event_id "
    };
}

mod postgres;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{
    Event, EventDraft, GeoPoint, NearbyEvent, NewUser, TicketDetails, TicketStatus, User,
};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

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
    /// fast with 503 instead of piling up.
    pub acquire_timeout: Duration,
}

/// Why a store call failed, sorted by what the caller should answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated")]
    UniqueViolation,
    #[error("foreign key constraint violated")]
    ForeignKeyViolation,
    #[error("check constraint {0:?} violated")]
    CheckViolation(Option<String>),
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error),
            sqlx::Error::Database(db) => {
                // PostgreSQL classes 08 (connection) and 57P (operator intervention: shutdown,
                // cannot connect now) mean the server is away, not that the query is wrong.
                let code = db.code();
                let code = code.as_deref().unwrap_or_default();
                if code.starts_with("08") || code.starts_with("57P") {
                    return StoreError::Unavailable(error);
                }
                match db.kind() {
                    sqlx::error::ErrorKind::UniqueViolation => StoreError::UniqueViolation,
                    sqlx::error::ErrorKind::ForeignKeyViolation => StoreError::ForeignKeyViolation,
                    sqlx::error::ErrorKind::CheckViolation => {
                        StoreError::CheckViolation(constraint_name(db.as_ref()))
                    }
                    _ => StoreError::Database(error),
                }
            }
            _ => StoreError::Database(error),
        }
    }
}

/// PostgreSQL names the constraint; SQLite only mentions it in the message.
fn constraint_name(db: &dyn sqlx::error::DatabaseError) -> Option<String> {
    db.constraint().map(str::to_owned).or_else(|| {
        db.message()
            .split_once("constraint failed: ")
            .map(|(_, name)| name.trim().to_owned())
    })
}

/// One page of a listing plus the number of rows matching the filter.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub skip: i64,
    pub limit: i64,
    pub upcoming_only: bool,
    /// Case-insensitive substring of title, venue name or city.
    pub text: Option<String>,
    pub starts_after: Option<DateTime<Utc>>,
    pub starts_before: Option<DateTime<Utc>>,
}

/// Upcoming, not sold-out events within `radius_km` of `center`, nearest first.
#[derive(Debug, Clone)]
pub struct NearbyQuery {
    pub center: GeoPoint,
    pub radius_km: f64,
    pub skip: i64,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventWrite {
    Done(Box<Event>),
    NotFound,
    NotCreator,
    /// The new `total_tickets` is below the tickets already sold.
    BelowSold,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventDelete {
    Deleted,
    NotFound,
    NotCreator,
    HasTickets,
}

#[derive(Debug, Clone)]
pub struct NewReservation {
    pub ticket_id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub hold: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReserveOutcome {
    Reserved(Box<TicketDetails>),
    EventNotFound,
    EventStarted,
    SoldOut,
}

/// Result of a payment or cancellation attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketChange {
    Done(Box<TicketDetails>),
    NotFound,
    NotOwner,
    /// The hold's deadline passed (by the database clock) before the change.
    Expired,
    /// The ticket is not in `reserved` (already paid or cancelled).
    NotReserved(TicketStatus),
}

#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// The key is new: the caller does the work and then completes or releases the key.
    Claimed,
    /// A request with this key already finished: its answer.
    Completed { status: u16, body: String },
    /// A request with this key is still being processed.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// The SQLite database file (secrets tied to the database are kept beside it).
    fn database_file(&self) -> Option<&std::path::Path> {
        None
    }
    fn pool_stats(&self) -> PoolStats;
    /// A real round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn close(&self);

    async fn insert_user(&self, user: &NewUser) -> Result<User, StoreError>;
    /// The user and their password hash, by (lower-cased) e-mail.
    async fn find_credentials(&self, email: &str) -> Result<Option<(User, String)>, StoreError>;
    async fn find_user(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    async fn set_user_location(
        &self,
        id: Uuid,
        location: GeoPoint,
    ) -> Result<Option<User>, StoreError>;

    async fn insert_event(
        &self,
        id: Uuid,
        creator_id: Uuid,
        draft: &EventDraft,
    ) -> Result<Event, StoreError>;
    async fn find_event(&self, id: Uuid) -> Result<Option<Event>, StoreError>;
    /// Replaces the creator-controlled fields, refusing a total below the tickets sold.
    async fn update_event(
        &self,
        id: Uuid,
        creator_id: Uuid,
        draft: &EventDraft,
    ) -> Result<EventWrite, StoreError>;
    /// Deletes an event that has no reserved or paid tickets (due holds are released first).
    async fn delete_event(&self, id: Uuid, creator_id: Uuid) -> Result<EventDelete, StoreError>;
    async fn list_events(&self, filter: &EventFilter) -> Result<Page<Event>, StoreError>;
    async fn nearby_events(&self, query: &NearbyQuery) -> Result<Page<NearbyEvent>, StoreError>;

    async fn reserve_ticket(&self, request: &NewReservation) -> Result<ReserveOutcome, StoreError>;
    async fn pay_ticket(&self, ticket_id: Uuid, user_id: Uuid) -> Result<TicketChange, StoreError>;
    async fn cancel_ticket(
        &self,
        ticket_id: Uuid,
        user_id: Uuid,
    ) -> Result<TicketChange, StoreError>;
    async fn find_ticket(&self, id: Uuid) -> Result<Option<TicketDetails>, StoreError>;
    /// A user's tickets, newest first; `status` filters on the effective status.
    async fn user_tickets(
        &self,
        user_id: Uuid,
        status: Option<TicketStatus>,
        skip: i64,
        limit: i64,
    ) -> Result<Page<TicketDetails>, StoreError>;
    /// Expires up to `batch_size` due holds and gives their seats back, in one transaction.
    /// Returns how many were expired.
    async fn expire_due_tickets(&self, batch_size: i64) -> Result<u64, StoreError>;

    async fn claim_idempotency_key(
        &self,
        user_id: Uuid,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyClaim, StoreError>;
    async fn complete_idempotency_key(
        &self,
        user_id: Uuid,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError>;
    /// Forgets a claim whose request failed before doing anything, so a retry may run.
    async fn release_idempotency_key(&self, user_id: Uuid, key: &str) -> Result<(), StoreError>;
    async fn purge_idempotency_keys(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Escapes LIKE wildcards so user text matches literally (the default escape is `\`).
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

/// What a stored key says about a new request with the same key.
fn idempotency_state(
    request_hash: &str,
    stored_hash: &str,
    status: Option<i64>,
    body: Option<String>,
) -> IdempotencyClaim {
    if stored_hash != request_hash {
        return IdempotencyClaim::Mismatch;
    }
    match (status.and_then(|s| u16::try_from(s).ok()), body) {
        (Some(status), Some(body)) => IdempotencyClaim::Completed { status, body },
        _ => IdempotencyClaim::InProgress,
    }
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
