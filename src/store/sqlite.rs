//! Embedded SQLite store: WAL mode, one writer connection (every write transaction is
//! `BEGIN IMMEDIATE` on it, so writers queue instead of failing) and a pool of readers.
//! Timestamps are stored as microseconds since the Unix epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::query::QueryAs;
use sqlx::sqlite::SqliteArguments;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::{
    Backend, EventDelete, EventFilter, EventWrite, IdempotencyClaim, NearbyQuery, NewReservation,
    Page, PoolStats, ReserveOutcome, Store, StoreError, StoreOptions, TicketChange, escape_like,
    idempotency_state,
};
use crate::domain::{
    Event, EventDraft, EventSummary, GeoPoint, NearbyEvent, NewUser, Ticket, TicketDetails,
    TicketStatus, User, UserSummary, Venue,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const READ_CONNECTIONS: u32 = 8;

mod batch;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
    reservations: tokio::sync::mpsc::Sender<batch::Pending>,
}

impl SqliteStore {
    pub async fn connect(options: &StoreOptions) -> anyhow::Result<Self> {
        let base = SqliteConnectOptions::from_str(&options.url)
            .context("DATABASE_URL is not a valid SQLite URL")?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            // Map the file instead of read() per page, and keep a larger page cache: searches
            // touch thousands of rows.
            .pragma("mmap_size", "1073741824")
            .pragma("cache_size", "-32000");
        let path = base.get_filename().to_path_buf();
        if path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:") {
            anyhow::bail!("SQLite needs a database file (for example sqlite://nearbytix.db)");
        }
        // A local file needs no liveness ping before each use (that would be one more hand-off
        // to the connection's worker thread per query).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.clone().create_if_missing(true))
            .await?;
        MIGRATOR
            .run(&writer)
            .await
            .context("applying the SQLite migrations")?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.read_only(true))
            .await?;
        Ok(Self {
            reservations: batch::spawn(writer.clone()),
            writer,
            reader,
            path,
        })
    }

    async fn diagnose_ticket(
        &self,
        ticket_id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<TicketChange, StoreError> {
        let row: Option<(Uuid, String, i64)> =
            sqlx::query_as("SELECT user_id, status, expires_at FROM tickets WHERE id = ?")
                .bind(ticket_id)
                .fetch_optional(&self.writer)
                .await?;
        let Some((owner, status, expires_at)) = row else {
            return Ok(TicketChange::NotFound);
        };
        if owner != user_id {
            return Ok(TicketChange::NotOwner);
        }
        Ok(match parse_status(&status)? {
            TicketStatus::Reserved if expires_at <= micros(now) => TicketChange::Expired,
            TicketStatus::Expired => TicketChange::Expired,
            other => TicketChange::NotReserved(other),
        })
    }

    /// The common case of a reservation, written together with whatever other reservations
    /// arrived at the same time (see [`batch`]). `None` when no seat was taken.
    async fn reserve_batched(
        &self,
        request: &NewReservation,
    ) -> Result<Option<TicketDetails>, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pending = batch::Pending {
            request: request.clone(),
            reply,
        };
        if self.reservations.send(pending).await.is_err() {
            return Err(sqlx::Error::WorkerCrashed.into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::WorkerCrashed.into()))
    }

    /// Why a reservation took no seat, read without the writer; `None` when the event may have
    /// due holds to release (only a write transaction can tell).
    async fn refusal_without_writing(
        &self,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<ReserveOutcome>, StoreError> {
        let state: Option<(bool, bool, bool)> = sqlx::query_as(
            "SELECT start_time <= ?2, tickets_sold >= total_tickets,
                    EXISTS (SELECT 1 FROM tickets
                            WHERE event_id = ?1 AND status = 'reserved' AND expires_at <= ?2)
             FROM events WHERE id = ?1",
        )
        .bind(event_id)
        .bind(micros(now))
        .fetch_optional(&self.reader)
        .await?;
        Ok(match state {
            None => Some(ReserveOutcome::EventNotFound),
            Some((true, _, _)) => Some(ReserveOutcome::EventStarted),
            Some((false, true, false)) => Some(ReserveOutcome::SoldOut),
            Some(_) => None,
        })
    }

    async fn event_owner(&self, id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let owner = sqlx::query_scalar("SELECT creator_id FROM events WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(owner)
    }

    async fn ticket_details_on(
        conn: &mut SqliteConnection,
        id: Uuid,
    ) -> Result<Option<TicketDetails>, StoreError> {
        let row: Option<TicketRow> = sqlx::query_as(concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM tickets t",
            ticket_joins!(),
            "WHERE t.id = ?"
        ))
        .bind(id)
        .fetch_optional(conn)
        .await?;
        row.map(TicketRow::into_details).transpose()
    }
}

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn from_micros(value: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {value}")))
}

fn parse_status(raw: &str) -> Result<TicketStatus, StoreError> {
    TicketStatus::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("ticket status {raw:?}")))
}

fn point(latitude: f64, longitude: f64) -> Result<GeoPoint, StoreError> {
    GeoPoint::new(latitude, longitude)
        .map_err(|_| StoreError::Corrupt(format!("coordinates {latitude}, {longitude}")))
}

/// Expires due holds (all, or of one event) inside the caller's write transaction and gives
/// their seats back. Returns how many tickets were expired.
async fn expire_holds(
    conn: &mut SqliteConnection,
    event_id: Option<Uuid>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let expired: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE tickets SET status = 'expired', updated_at = ?1
         WHERE id IN (
            SELECT id FROM tickets
            WHERE status = 'reserved' AND expires_at <= ?1 AND (?2 IS NULL OR event_id = ?2)
            ORDER BY expires_at LIMIT ?3)
         RETURNING event_id",
    )
    .bind(micros(now))
    .bind(event_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut released: BTreeMap<Uuid, i64> = BTreeMap::new();
    for event in &expired {
        *released.entry(*event).or_default() += 1;
    }
    for (event, seats) in released {
        sqlx::query(
            "UPDATE events SET tickets_sold = tickets_sold - ?2, updated_at = ?3 WHERE id = ?1",
        )
        .bind(event)
        .bind(seats)
        .bind(micros(now))
        .execute(&mut *conn)
        .await?;
    }
    Ok(expired.len() as u64)
}

#[derive(FromRow)]
struct UserRow {
    id: Uuid,
    name: String,
    email: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    created_at: i64,
    updated_at: i64,
}

impl UserRow {
    fn into_user(self) -> Result<User, StoreError> {
        let location = match (self.latitude, self.longitude) {
            (Some(latitude), Some(longitude)) => Some(point(latitude, longitude)?),
            _ => None,
        };
        Ok(User {
            id: self.id,
            name: self.name,
            email: self.email,
            location,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

#[derive(FromRow)]
struct EventRow {
    id: Uuid,
    creator_id: Uuid,
    title: String,
    description: Option<String>,
    start_time: i64,
    end_time: i64,
    total_tickets: i32,
    tickets_sold: i32,
    latitude: f64,
    longitude: f64,
    venue_name: String,
    address_line1: String,
    address_line2: Option<String>,
    city: String,
    state: String,
    country: String,
    postal_code: String,
    created_at: i64,
    updated_at: i64,
}

impl EventRow {
    fn into_event(self) -> Result<Event, StoreError> {
        Ok(Event {
            id: self.id,
            creator_id: self.creator_id,
            title: self.title,
            description: self.description,
            start_time: from_micros(self.start_time)?,
            end_time: from_micros(self.end_time)?,
            total_tickets: self.total_tickets,
            tickets_sold: self.tickets_sold,
            venue: Venue {
                location: point(self.latitude, self.longitude)?,
                venue_name: self.venue_name,
                address_line1: self.address_line1,
                address_line2: self.address_line2,
                city: self.city,
                state: self.state,
                country: self.country,
                postal_code: self.postal_code,
            },
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

#[derive(FromRow)]
struct CountedEventRow {
    #[sqlx(flatten)]
    event: EventRow,
    total: i64,
}

#[derive(FromRow)]
pub(super) struct TicketRow {
    id: Uuid,
    user_id: Uuid,
    event_id: Uuid,
    status: String,
    expires_at: i64,
    paid_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    user_name: String,
    user_email: String,
    event_title: String,
    event_start_time: i64,
    event_end_time: i64,
    event_venue_name: String,
    event_city: String,
    event_state: String,
}

impl TicketRow {
    pub(super) fn into_details(self) -> Result<TicketDetails, StoreError> {
        Ok(TicketDetails {
            ticket: Ticket {
                id: self.id,
                user_id: self.user_id,
                event_id: self.event_id,
                status: parse_status(&self.status)?,
                expires_at: from_micros(self.expires_at)?,
                paid_at: self.paid_at.map(from_micros).transpose()?,
                created_at: from_micros(self.created_at)?,
                updated_at: from_micros(self.updated_at)?,
            },
            user: UserSummary {
                id: self.user_id,
                name: self.user_name,
                email: self.user_email,
            },
            event: EventSummary {
                id: self.event_id,
                title: self.event_title,
                start_time: from_micros(self.event_start_time)?,
                end_time: from_micros(self.event_end_time)?,
                venue_name: self.event_venue_name,
                city: self.event_city,
                state: self.event_state,
            },
        })
    }
}

#[derive(FromRow)]
struct CountedTicketRow {
    #[sqlx(flatten)]
    ticket: TicketRow,
    total: i64,
}

/// Binds `?1` id, `?2` creator, `?3..?16` the draft and `?17` the write time, in the column
/// order of the event insert and update statements.
fn bind_draft<'q>(
    query: QueryAs<'q, Sqlite, EventRow, SqliteArguments<'q>>,
    id: Uuid,
    creator_id: Uuid,
    draft: &'q EventDraft,
) -> QueryAs<'q, Sqlite, EventRow, SqliteArguments<'q>> {
    query
        .bind(id)
        .bind(creator_id)
        .bind(&draft.title)
        .bind(&draft.description)
        .bind(micros(draft.start_time))
        .bind(micros(draft.end_time))
        .bind(draft.total_tickets)
        .bind(draft.venue.location.latitude)
        .bind(draft.venue.location.longitude)
        .bind(&draft.venue.venue_name)
        .bind(&draft.venue.address_line1)
        .bind(&draft.venue.address_line2)
        .bind(&draft.venue.city)
        .bind(&draft.venue.state)
        .bind(&draft.venue.country)
        .bind(&draft.venue.postal_code)
        .bind(micros(Utc::now()))
}

fn push_event_filter(
    builder: &mut QueryBuilder<'_, Sqlite>,
    filter: &EventFilter,
    now: DateTime<Utc>,
) {
    builder.push(" WHERE 1 = 1");
    if filter.upcoming_only {
        builder.push(" AND e.start_time > ").push_bind(micros(now));
    }
    if let Some(text) = &filter.text {
        // SQLite's LIKE ignores case for ASCII letters.
        let pattern = format!("%{}%", escape_like(text));
        builder
            .push(" AND (e.title LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR e.venue_name LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR e.city LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
    if let Some(after) = filter.starts_after {
        builder
            .push(" AND e.start_time > ")
            .push_bind(micros(after));
    }
    if let Some(before) = filter.starts_before {
        builder
            .push(" AND e.start_time < ")
            .push_bind(micros(before));
    }
}

fn push_ticket_filter(
    builder: &mut QueryBuilder<'_, Sqlite>,
    user_id: Uuid,
    status: Option<TicketStatus>,
    now: DateTime<Utc>,
) {
    builder.push("WHERE t.user_id = ").push_bind(user_id);
    match status {
        None => {}
        Some(TicketStatus::Reserved) => {
            builder
                .push(" AND t.status = 'reserved' AND t.expires_at > ")
                .push_bind(micros(now));
        }
        Some(TicketStatus::Expired) => {
            builder
                .push(" AND (t.status = 'expired' OR (t.status = 'reserved' AND t.expires_at <= ")
                .push_bind(micros(now))
                .push("))");
        }
        Some(TicketStatus::Paid) => {
            builder.push(" AND t.status = 'paid'");
        }
        Some(TicketStatus::Cancelled) => {
            builder.push(" AND t.status = 'cancelled'");
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn database_file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.writer.size() + self.reader.size(),
            idle: u32::try_from(self.writer.num_idle() + self.reader.num_idle())
                .unwrap_or(u32::MAX),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    #[tracing::instrument(skip_all)]
    async fn insert_user(&self, user: &NewUser) -> Result<User, StoreError> {
        let now = micros(Utc::now());
        let row: UserRow = sqlx::query_as(concat!(
            "INSERT INTO users (id, name, email, password_hash, latitude, longitude, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) RETURNING ",
            user_columns!()
        ))
        .bind(user.id)
        .bind(&user.name)
        .bind(user.email.as_str())
        .bind(&user.password_hash)
        .bind(user.location.map(|p| p.latitude))
        .bind(user.location.map(|p| p.longitude))
        .bind(now)
        .fetch_one(&self.writer)
        .await?;
        row.into_user()
    }

    #[tracing::instrument(skip_all)]
    async fn find_credentials(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: UserRow,
            password_hash: String,
        }
        let row: Option<Row> = sqlx::query_as(concat!(
            "SELECT password_hash, ",
            user_columns!(),
            " FROM users WHERE email = ? COLLATE NOCASE"
        ))
        .bind(email)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| Ok((row.user.into_user()?, row.password_hash)))
            .transpose()
    }

    async fn find_user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(UserRow::into_user).transpose()
    }

    #[tracing::instrument(skip(self))]
    async fn set_user_location(
        &self,
        id: Uuid,
        location: GeoPoint,
    ) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "UPDATE users SET latitude = ?2, longitude = ?3, updated_at = ?4 WHERE id = ?1 RETURNING ",
            user_columns!()
        ))
        .bind(id)
        .bind(location.latitude)
        .bind(location.longitude)
        .bind(micros(Utc::now()))
        .fetch_optional(&self.writer)
        .await?;
        row.map(UserRow::into_user).transpose()
    }

    #[tracing::instrument(skip(self, draft))]
    async fn insert_event(
        &self,
        id: Uuid,
        creator_id: Uuid,
        draft: &EventDraft,
    ) -> Result<Event, StoreError> {
        let query = sqlx::query_as(concat!(
            "INSERT INTO events (id, creator_id, title, description, start_time, end_time,
                total_tickets, latitude, longitude, venue_name, address_line1, address_line2,
                city, state, country, postal_code, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?17)
             RETURNING ",
            event_columns!("")
        ));
        let row: EventRow = bind_draft(query, id, creator_id, draft)
            .fetch_one(&self.writer)
            .await?;
        row.into_event()
    }

    async fn find_event(&self, id: Uuid) -> Result<Option<Event>, StoreError> {
        let row: Option<EventRow> = sqlx::query_as(concat!(
            "SELECT ",
            event_columns!("e."),
            " FROM events e WHERE e.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(EventRow::into_event).transpose()
    }

    #[tracing::instrument(skip(self, draft))]
    async fn update_event(
        &self,
        id: Uuid,
        creator_id: Uuid,
        draft: &EventDraft,
    ) -> Result<EventWrite, StoreError> {
        let query = sqlx::query_as(concat!(
            "UPDATE events SET title = ?3, description = ?4, start_time = ?5, end_time = ?6,
                total_tickets = ?7, latitude = ?8, longitude = ?9, venue_name = ?10,
                address_line1 = ?11, address_line2 = ?12, city = ?13, state = ?14, country = ?15,
                postal_code = ?16, updated_at = ?17
             WHERE id = ?1 AND creator_id = ?2 RETURNING ",
            event_columns!("")
        ));
        let updated = bind_draft(query, id, creator_id, draft)
            .fetch_optional(&self.writer)
            .await;
        match updated {
            Ok(Some(row)) => Ok(EventWrite::Done(Box::new(row.into_event()?))),
            Ok(None) => Ok(match self.event_owner(id).await? {
                None => EventWrite::NotFound,
                Some(_) => EventWrite::NotCreator,
            }),
            Err(error) => match StoreError::from(error) {
                StoreError::CheckViolation(Some(name)) if name == "events_tickets_sold_range" => {
                    Ok(EventWrite::BelowSold)
                }
                other => Err(other),
            },
        }
    }

    #[tracing::instrument(skip(self))]
    async fn delete_event(&self, id: Uuid, creator_id: Uuid) -> Result<EventDelete, StoreError> {
        let now = Utc::now();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let owner: Option<Uuid> = sqlx::query_scalar("SELECT creator_id FROM events WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match owner {
            None => EventDelete::NotFound,
            Some(owner) if owner != creator_id => EventDelete::NotCreator,
            Some(_) => {
                expire_holds(&mut tx, Some(id), i64::MAX, now).await?;
                let deleted = sqlx::query("DELETE FROM events WHERE id = ? AND tickets_sold = 0")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 1 {
                    EventDelete::Deleted
                } else {
                    EventDelete::HasTickets
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Page<Event>, StoreError> {
        let now = Utc::now();
        let mut builder = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            event_columns!("e."),
            ", count(*) OVER () AS total FROM events e"
        ));
        push_event_filter(&mut builder, filter, now);
        builder
            .push(" ORDER BY e.start_time, e.id LIMIT ")
            .push_bind(filter.limit)
            .push(" OFFSET ")
            .push_bind(filter.skip);
        let rows: Vec<CountedEventRow> = builder.build_query_as().fetch_all(&self.reader).await?;
        if rows.is_empty() {
            let mut builder = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM events e");
            push_event_filter(&mut builder, filter, now);
            let total: i64 = builder.build_query_scalar().fetch_one(&self.reader).await?;
            return Ok(Page {
                items: Vec::new(),
                total,
            });
        }
        let total = rows[0].total;
        let items = rows
            .into_iter()
            .map(|row| row.event.into_event())
            .collect::<Result<_, _>>()?;
        Ok(Page { items, total })
    }

    #[tracing::instrument(skip(self))]
    async fn nearby_events(&self, query: &NearbyQuery) -> Result<Page<NearbyEvent>, StoreError> {
        // The R*Tree narrows the search to bounding boxes; exact distances are computed here.
        // Candidates come back as one JSON array (one row instead of thousands: every row
        // would be a hand-off from the connection's thread), and only the page is read in full.
        let now = micros(Utc::now());
        let mut candidates: Vec<(i64, f64, i64, String)> = Vec::new();
        for bbox in query.center.bounding_boxes(query.radius_km) {
            let json: String = sqlx::query_scalar(
                "SELECT json_group_array(json_array(seq, latitude, longitude, start_time,
                                                    lower(hex(id))))
                 FROM events_rtree
                 WHERE max_lat >= ?1 AND min_lat <= ?2 AND max_lon >= ?3 AND min_lon <= ?4
                   AND start_time > ?5 AND on_sale",
            )
            .bind(bbox.min_lat)
            .bind(bbox.max_lat)
            .bind(bbox.min_lon)
            .bind(bbox.max_lon)
            .bind(now)
            .fetch_one(&self.reader)
            .await?;
            let rows: Vec<(i64, f64, f64, i64, String)> = serde_json::from_str(&json)
                .map_err(|error| StoreError::Corrupt(format!("candidate list: {error}")))?;
            for (seq, latitude, longitude, start_time, id) in rows {
                let distance = query.center.distance_km(&point(latitude, longitude)?);
                if distance <= query.radius_km {
                    candidates.push((seq, distance, start_time, id));
                }
            }
        }
        // Two boxes never overlap, but an event on the antimeridian itself can sit in both.
        candidates.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
        candidates.dedup_by_key(|candidate| candidate.0);
        let total = candidates.len() as i64;
        let page: Vec<(i64, f64)> = candidates
            .into_iter()
            .skip(usize::try_from(query.skip).unwrap_or(usize::MAX))
            .take(usize::try_from(query.limit).unwrap_or(0))
            .map(|(seq, distance, _, _)| (seq, distance))
            .collect();
        if page.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                total,
            });
        }
        let mut builder = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT e.seq, ",
            event_columns!("e."),
            " FROM events e WHERE e.seq IN ("
        ));
        let mut separated = builder.separated(", ");
        for (seq, _) in &page {
            separated.push_bind(*seq);
        }
        builder.push(")");
        #[derive(FromRow)]
        struct Row {
            seq: i64,
            #[sqlx(flatten)]
            event: EventRow,
        }
        let rows: Vec<Row> = builder.build_query_as().fetch_all(&self.reader).await?;
        let mut by_seq: BTreeMap<i64, EventRow> =
            rows.into_iter().map(|row| (row.seq, row.event)).collect();
        let items = page
            .into_iter()
            .filter_map(|(seq, distance_km)| {
                // An event deleted between the two reads is simply left out.
                by_seq.remove(&seq).map(|row| {
                    row.into_event()
                        .map(|event| NearbyEvent { event, distance_km })
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Page { items, total })
    }

    #[tracing::instrument(skip(self), fields(event_id = %request.event_id))]
    async fn reserve_ticket(&self, request: &NewReservation) -> Result<ReserveOutcome, StoreError> {
        let now = Utc::now();
        let expires_at = now
            + Duration::from_std(request.hold)
                .map_err(|_| StoreError::Corrupt("hold duration out of range".into()))?;
        if let Some(details) = self.reserve_batched(request).await? {
            return Ok(ReserveOutcome::Reserved(Box::new(details)));
        }
        if let Some(refusal) = self.refusal_without_writing(request.event_id, now).await? {
            return Ok(refusal);
        }
        // No seat taken: find out why inside a write transaction, releasing this event's due
        // holds first when it looks sold out.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let take_seat = "UPDATE events SET tickets_sold = tickets_sold + 1, updated_at = ?2
                         WHERE id = ?1 AND tickets_sold < total_tickets AND start_time > ?2";
        let mut taken = sqlx::query(take_seat)
            .bind(request.event_id)
            .bind(micros(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if taken == 0 {
            let state: Option<(bool, bool)> = sqlx::query_as(
                "SELECT start_time <= ?2, tickets_sold >= total_tickets FROM events WHERE id = ?1",
            )
            .bind(request.event_id)
            .bind(micros(now))
            .fetch_optional(&mut *tx)
            .await?;
            let refusal = match state {
                None => Some(ReserveOutcome::EventNotFound),
                Some((true, _)) => Some(ReserveOutcome::EventStarted),
                Some((false, _)) => {
                    // Looks sold out: release this event's due holds, then try once more.
                    if expire_holds(&mut tx, Some(request.event_id), i64::MAX, now).await? > 0 {
                        taken = sqlx::query(take_seat)
                            .bind(request.event_id)
                            .bind(micros(now))
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    }
                    (taken == 0).then_some(ReserveOutcome::SoldOut)
                }
            };
            if let Some(refusal) = refusal {
                // Commit: released holds stay released.
                tx.commit().await?;
                return Ok(refusal);
            }
        }
        sqlx::query(
            "INSERT INTO tickets (id, user_id, event_id, status, expires_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'reserved', ?4, ?5, ?5)",
        )
        .bind(request.ticket_id)
        .bind(request.user_id)
        .bind(request.event_id)
        .bind(micros(expires_at))
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        let details = Self::ticket_details_on(&mut tx, request.ticket_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("reserved ticket vanished".into()))?;
        tx.commit().await?;
        Ok(ReserveOutcome::Reserved(Box::new(details)))
    }

    #[tracing::instrument(skip(self))]
    async fn pay_ticket(&self, ticket_id: Uuid, user_id: Uuid) -> Result<TicketChange, StoreError> {
        let now = Utc::now();
        let paid = sqlx::query(
            "UPDATE tickets SET status = 'paid', paid_at = ?3, updated_at = ?3
             WHERE id = ?1 AND user_id = ?2 AND status = 'reserved' AND expires_at > ?3",
        )
        .bind(ticket_id)
        .bind(user_id)
        .bind(micros(now))
        .execute(&self.writer)
        .await?
        .rows_affected();
        if paid == 0 {
            return self.diagnose_ticket(ticket_id, user_id, now).await;
        }
        let mut conn = self.reader.acquire().await?;
        Ok(match Self::ticket_details_on(&mut conn, ticket_id).await? {
            Some(details) => TicketChange::Done(Box::new(details)),
            None => TicketChange::NotFound,
        })
    }

    #[tracing::instrument(skip(self))]
    async fn cancel_ticket(
        &self,
        ticket_id: Uuid,
        user_id: Uuid,
    ) -> Result<TicketChange, StoreError> {
        let now = Utc::now();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let event_id: Option<Uuid> = sqlx::query_scalar(
            "UPDATE tickets SET status = 'cancelled', updated_at = ?3
             WHERE id = ?1 AND user_id = ?2 AND status = 'reserved' AND expires_at > ?3
             RETURNING event_id",
        )
        .bind(ticket_id)
        .bind(user_id)
        .bind(micros(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(event_id) = event_id else {
            tx.rollback().await?;
            return self.diagnose_ticket(ticket_id, user_id, now).await;
        };
        sqlx::query(
            "UPDATE events SET tickets_sold = tickets_sold - 1, updated_at = ?2 WHERE id = ?1",
        )
        .bind(event_id)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        let details = Self::ticket_details_on(&mut tx, ticket_id).await?;
        tx.commit().await?;
        Ok(details.map_or(TicketChange::NotFound, |details| {
            TicketChange::Done(Box::new(details))
        }))
    }

    async fn find_ticket(&self, id: Uuid) -> Result<Option<TicketDetails>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        Self::ticket_details_on(&mut conn, id).await
    }

    async fn user_tickets(
        &self,
        user_id: Uuid,
        status: Option<TicketStatus>,
        skip: i64,
        limit: i64,
    ) -> Result<Page<TicketDetails>, StoreError> {
        let now = Utc::now();
        let mut builder = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            ticket_columns!(),
            ", count(*) OVER () AS total FROM tickets t",
            ticket_joins!()
        ));
        push_ticket_filter(&mut builder, user_id, status, now);
        builder
            .push(" ORDER BY t.created_at DESC, t.id DESC LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(skip);
        let rows: Vec<CountedTicketRow> = builder.build_query_as().fetch_all(&self.reader).await?;
        if rows.is_empty() {
            let mut builder = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM tickets t ");
            push_ticket_filter(&mut builder, user_id, status, now);
            let total: i64 = builder.build_query_scalar().fetch_one(&self.reader).await?;
            return Ok(Page {
                items: Vec::new(),
                total,
            });
        }
        let total = rows[0].total;
        let items = rows
            .into_iter()
            .map(|row| row.ticket.into_details())
            .collect::<Result<_, _>>()?;
        Ok(Page { items, total })
    }

    #[tracing::instrument(skip(self))]
    async fn expire_due_tickets(&self, batch_size: i64) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let expired = expire_holds(&mut tx, None, batch_size, Utc::now()).await?;
        tx.commit().await?;
        Ok(expired)
    }

    async fn claim_idempotency_key(
        &self,
        user_id: Uuid,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyClaim, StoreError> {
        let now = Utc::now();
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let stored: Option<(String, Option<i64>, Option<String>, i64)> = sqlx::query_as(
            "SELECT request_hash, response_status, response_body, created_at
             FROM idempotency_keys WHERE user_id = ? AND key = ?",
        )
        .bind(user_id)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let forgotten_before = micros(now - Duration::hours(24));
        let claim = match stored {
            Some((stored_hash, status, body, created_at)) if created_at >= forgotten_before => {
                idempotency_state(request_hash, &stored_hash, status, body)
            }
            _ => {
                sqlx::query(
                    "INSERT OR REPLACE INTO idempotency_keys (user_id, key, request_hash, created_at)
                     VALUES (?, ?, ?, ?)",
                )
                .bind(user_id)
                .bind(key)
                .bind(request_hash)
                .bind(micros(now))
                .execute(&mut *tx)
                .await?;
                IdempotencyClaim::Claimed
            }
        };
        tx.commit().await?;
        Ok(claim)
    }

    async fn complete_idempotency_key(
        &self,
        user_id: Uuid,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET response_status = ?, response_body = ?
             WHERE user_id = ? AND key = ?",
        )
        .bind(i64::from(status))
        .bind(body)
        .bind(user_id)
        .bind(key)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn release_idempotency_key(&self, user_id: Uuid, key: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys
             WHERE user_id = ? AND key = ? AND response_status IS NULL",
        )
        .bind(user_id)
        .bind(key)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn purge_idempotency_keys(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let purged = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(micros(older_than))
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(purged)
    }
}
