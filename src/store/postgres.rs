//! PostgreSQL + PostGIS store. Each guarantee is one statement (or one short transaction), so
//! row locks are held for the time of a single round trip.

use std::str::FromStr;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::query::QueryAs;
use sqlx::{FromRow, Postgres, QueryBuilder};
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Expires due holds (optionally of one event) and gives the seats back, in one statement.
/// `SKIP LOCKED` lets several sweepers share the work; event rows are locked in id order so
/// concurrent sweepers cannot deadlock on them.
macro_rules! expire_holds {
    ($filter:literal) => {
        concat!(
            "WITH due AS (
                SELECT id FROM tickets
                WHERE status = 'reserved' AND expires_at <= now() ",
            $filter,
            " ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
            ), expired AS (
                UPDATE tickets t SET status = 'expired', updated_at = now()
                FROM due WHERE t.id = due.id AND t.status = 'reserved'
                RETURNING t.event_id
            ), released AS (
                SELECT event_id, count(*)::int AS n FROM expired GROUP BY event_id
            ), locked AS (
                SELECT e.id FROM events e JOIN released r ON r.event_id = e.id
                ORDER BY e.id FOR UPDATE OF e
            ), seats AS (
                UPDATE events e SET tickets_sold = e.tickets_sold - r.n, updated_at = now()
                FROM released r, locked l WHERE e.id = r.event_id AND l.id = e.id
                RETURNING e.id
            )
            SELECT (SELECT count(*) FROM expired) AS expired, (SELECT count(*) FROM seats) AS events"
        )
    };
}

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(options: &StoreOptions) -> anyhow::Result<Self> {
        // The URL may carry a password: never echo it.
        // Requests are short and many run at once: parallel workers for one query only add
        // start-up cost and contend with the other requests for the same cores.
        let connect_options = PgConnectOptions::from_str(&options.url)
            .context("DATABASE_URL is not a valid PostgreSQL URL")?
            .options([("max_parallel_workers_per_gather", "0")]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect_options)
            .await
            .context("could not connect to PostgreSQL at DATABASE_URL")?;
        ensure_postgis_available(&pool).await?;
        MIGRATOR
            .run(&pool)
            .await
            .context("applying the PostgreSQL migrations")?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn reserve_once(
        &self,
        request: &NewReservation,
    ) -> Result<Option<TicketDetails>, StoreError> {
        let row: Option<TicketRow> = sqlx::query_as(
            "WITH seat AS (
                UPDATE events SET tickets_sold = tickets_sold + 1, updated_at = now()
                WHERE id = $1 AND tickets_sold < total_tickets AND start_time > now()
                RETURNING id, title, start_time, end_time, venue_name, city, state
            ), ticket AS (
                INSERT INTO tickets (id, user_id, event_id, status, expires_at)
                SELECT $2, $3, seat.id, 'reserved', now() + make_interval(secs => $4) FROM seat
                RETURNING id, user_id, event_id, status, expires_at, paid_at, created_at, updated_at
            )
            SELECT ticket.*, u.name AS user_name, u.email AS user_email,
                   seat.title AS event_title, seat.start_time AS event_start_time,
                   seat.end_time AS event_end_time, seat.venue_name AS event_venue_name,
                   seat.city AS event_city, seat.state AS event_state
            FROM ticket CROSS JOIN seat JOIN users u ON u.id = ticket.user_id",
        )
        .bind(request.event_id)
        .bind(request.ticket_id)
        .bind(request.user_id)
        .bind(request.hold.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        row.map(TicketRow::into_details).transpose()
    }

    /// Explains why a ticket could not be paid or cancelled.
    async fn diagnose_ticket(
        &self,
        ticket_id: Uuid,
        user_id: Uuid,
    ) -> Result<TicketChange, StoreError> {
        let row: Option<(Uuid, String, bool)> = sqlx::query_as(
            "SELECT user_id, status, expires_at <= now() FROM tickets WHERE id = $1",
        )
        .bind(ticket_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((owner, status, past_deadline)) = row else {
            return Ok(TicketChange::NotFound);
        };
        if owner != user_id {
            return Ok(TicketChange::NotOwner);
        }
        Ok(match parse_status(&status)? {
            TicketStatus::Reserved if past_deadline => TicketChange::Expired,
            TicketStatus::Expired => TicketChange::Expired,
            other => TicketChange::NotReserved(other),
        })
    }

    async fn event_owner(&self, id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let owner = sqlx::query_scalar("SELECT creator_id FROM events WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(owner)
    }
}

async fn ensure_postgis_available(pool: &PgPool) -> anyhow::Result<()> {
    let available: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis')",
    )
    .fetch_one(pool)
    .await
    .context("checking for the PostGIS extension")?;
    if !available {
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(pool)
            .await
            .unwrap_or_default();
        let major = version.split('.').next().unwrap_or("<version>");
        anyhow::bail!(
            "PostGIS is not installed on this PostgreSQL server: install the package \
             postgresql-{major}-postgis-3 (Debian/Ubuntu) or use the postgis/postgis image, then start NearbyTix again"
        );
    }
    Ok(())
}

fn parse_status(raw: &str) -> Result<TicketStatus, StoreError> {
    TicketStatus::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("ticket status {raw:?}")))
}

fn point(latitude: f64, longitude: f64) -> Result<GeoPoint, StoreError> {
    GeoPoint::new(latitude, longitude)
        .map_err(|_| StoreError::Corrupt(format!("coordinates {latitude}, {longitude}")))
}

#[derive(FromRow)]
struct UserRow {
    id: Uuid,
    name: String,
    email: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(FromRow)]
struct EventRow {
    id: Uuid,
    creator_id: Uuid,
    title: String,
    description: Option<String>,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
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
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl EventRow {
    fn into_event(self) -> Result<Event, StoreError> {
        Ok(Event {
            id: self.id,
            creator_id: self.creator_id,
            title: self.title,
            description: self.description,
            start_time: self.start_time,
            end_time: self.end_time,
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
            created_at: self.created_at,
            updated_at: self.updated_at,
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
struct NearbyEventRow {
    #[sqlx(flatten)]
    event: EventRow,
    distance_km: f64,
    total: i64,
}

#[derive(FromRow)]
struct TicketRow {
    id: Uuid,
    user_id: Uuid,
    event_id: Uuid,
    status: String,
    expires_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    user_name: String,
    user_email: String,
    event_title: String,
    event_start_time: DateTime<Utc>,
    event_end_time: DateTime<Utc>,
    event_venue_name: String,
    event_city: String,
    event_state: String,
}

impl TicketRow {
    fn into_details(self) -> Result<TicketDetails, StoreError> {
        Ok(TicketDetails {
            ticket: Ticket {
                id: self.id,
                user_id: self.user_id,
                event_id: self.event_id,
                status: parse_status(&self.status)?,
                expires_at: self.expires_at,
                paid_at: self.paid_at,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
            user: UserSummary {
                id: self.user_id,
                name: self.user_name,
                email: self.user_email,
            },
            event: EventSummary {
                id: self.event_id,
                title: self.event_title,
                start_time: self.event_start_time,
                end_time: self.event_end_time,
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

/// Turns rows that carry `count(*) OVER ()` into a page; an empty page past the end still
/// needs the count, which `count_rows` supplies.
async fn page_from_counted<R, T, F, C>(
    rows: Vec<R>,
    split: F,
    count_rows: C,
) -> Result<Page<T>, StoreError>
where
    F: Fn(R) -> Result<(T, i64), StoreError>,
    C: std::future::Future<Output = Result<i64, StoreError>>,
{
    if rows.is_empty() {
        return Ok(Page {
            items: Vec::new(),
            total: count_rows.await?,
        });
    }
    let mut total = 0;
    let items = rows
        .into_iter()
        .map(|row| {
            let (item, count) = split(row)?;
            total = count;
            Ok(item)
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Page { items, total })
}

/// Binds `$1` id, `$2` creator and `$3..$16` the draft, in the column order of the event
/// insert and update statements.
fn bind_draft<'q>(
    query: QueryAs<'q, Postgres, EventRow, PgArguments>,
    id: Uuid,
    creator_id: Uuid,
    draft: &'q EventDraft,
) -> QueryAs<'q, Postgres, EventRow, PgArguments> {
    query
        .bind(id)
        .bind(creator_id)
        .bind(&draft.title)
        .bind(&draft.description)
        .bind(draft.start_time)
        .bind(draft.end_time)
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
}

fn push_event_filter(builder: &mut QueryBuilder<'_, Postgres>, filter: &EventFilter) {
    builder.push(" WHERE true");
    if filter.upcoming_only {
        builder.push(" AND e.start_time > now()");
    }
    if let Some(text) = &filter.text {
        let pattern = format!("%{}%", escape_like(text));
        builder
            .push(" AND (e.title ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR e.venue_name ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR e.city ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
    if let Some(after) = filter.starts_after {
        builder.push(" AND e.start_time > ").push_bind(after);
    }
    if let Some(before) = filter.starts_before {
        builder.push(" AND e.start_time < ").push_bind(before);
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    #[tracing::instrument(skip_all)]
    async fn insert_user(&self, user: &NewUser) -> Result<User, StoreError> {
        let row: UserRow = sqlx::query_as(concat!(
            "INSERT INTO users (id, name, email, password_hash, latitude, longitude)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            user_columns!()
        ))
        .bind(user.id)
        .bind(&user.name)
        .bind(user.email.as_str())
        .bind(&user.password_hash)
        .bind(user.location.map(|p| p.latitude))
        .bind(user.location.map(|p| p.longitude))
        .fetch_one(&self.pool)
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
            " FROM users WHERE lower(email) = lower($1)"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((row.user.into_user()?, row.password_hash)))
            .transpose()
    }

    async fn find_user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
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
            "UPDATE users SET latitude = $2, longitude = $3, updated_at = now() WHERE id = $1 RETURNING ",
            user_columns!()
        ))
        .bind(id)
        .bind(location.latitude)
        .bind(location.longitude)
        .fetch_optional(&self.pool)
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
                city, state, country, postal_code)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             RETURNING ",
            event_columns!("")
        ));
        let row: EventRow = bind_draft(query, id, creator_id, draft)
            .fetch_one(&self.pool)
            .await?;
        row.into_event()
    }

    async fn find_event(&self, id: Uuid) -> Result<Option<Event>, StoreError> {
        let row: Option<EventRow> = sqlx::query_as(concat!(
            "SELECT ",
            event_columns!("e."),
            " FROM events e WHERE e.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
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
            "UPDATE events SET title = $3, description = $4, start_time = $5, end_time = $6,
                total_tickets = $7, latitude = $8, longitude = $9, venue_name = $10,
                address_line1 = $11, address_line2 = $12, city = $13, state = $14, country = $15,
                postal_code = $16, updated_at = now()
             WHERE id = $1 AND creator_id = $2 RETURNING ",
            event_columns!("")
        ));
        let updated = bind_draft(query, id, creator_id, draft)
            .fetch_optional(&self.pool)
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
        match self.event_owner(id).await? {
            None => return Ok(EventDelete::NotFound),
            Some(owner) if owner != creator_id => return Ok(EventDelete::NotCreator),
            Some(_) => {}
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(expire_holds!("AND event_id = $2"))
            .bind(i64::MAX)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // `tickets_sold` counts reserved and paid tickets, and the row lock taken here orders
        // this delete after (or before) any concurrent reservation of the event.
        let deleted = sqlx::query("DELETE FROM events WHERE id = $1 AND tickets_sold = 0")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(if deleted == 1 {
            EventDelete::Deleted
        } else if self.event_owner(id).await?.is_some() {
            EventDelete::HasTickets
        } else {
            EventDelete::NotFound
        })
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Page<Event>, StoreError> {
        let mut builder = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            event_columns!("e."),
            ", count(*) OVER () AS total FROM events e"
        ));
        push_event_filter(&mut builder, filter);
        builder
            .push(" ORDER BY e.start_time, e.id LIMIT ")
            .push_bind(filter.limit)
            .push(" OFFSET ")
            .push_bind(filter.skip);
        let rows: Vec<CountedEventRow> = builder.build_query_as().fetch_all(&self.pool).await?;
        let count_rows = async {
            let mut builder = QueryBuilder::<Postgres>::new("SELECT count(*) FROM events e");
            push_event_filter(&mut builder, filter);
            let total: i64 = builder.build_query_scalar().fetch_one(&self.pool).await?;
            Ok(total)
        };
        page_from_counted(
            rows,
            |row| Ok((row.event.into_event()?, row.total)),
            count_rows,
        )
        .await
    }

    #[tracing::instrument(skip(self))]
    async fn nearby_events(&self, query: &NearbyQuery) -> Result<Page<NearbyEvent>, StoreError> {
        // Spherical distances (use_spheroid = false) so both backends agree exactly; the GiST
        // index on `location` serves ST_DWithin.
        let rows: Vec<NearbyEventRow> = sqlx::query_as(concat!(
            "SELECT ",
            event_columns!("e."),
            ", ST_Distance(e.location, ST_MakePoint($2, $1)::geography, false) / 1000.0 AS distance_km,
               count(*) OVER () AS total
             FROM events e
             WHERE ST_DWithin(e.location, ST_MakePoint($2, $1)::geography, $3 * 1000.0, false)
               AND e.start_time > now() AND e.tickets_sold < e.total_tickets
             ORDER BY distance_km, e.start_time, e.id
             LIMIT $4 OFFSET $5"
        ))
        .bind(query.center.latitude)
        .bind(query.center.longitude)
        .bind(query.radius_km)
        .bind(query.limit)
        .bind(query.skip)
        .fetch_all(&self.pool)
        .await?;
        let count_rows = async {
            let total: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events e
                 WHERE ST_DWithin(e.location, ST_MakePoint($2, $1)::geography, $3 * 1000.0, false)
                   AND e.start_time > now() AND e.tickets_sold < e.total_tickets",
            )
            .bind(query.center.latitude)
            .bind(query.center.longitude)
            .bind(query.radius_km)
            .fetch_one(&self.pool)
            .await?;
            Ok(total)
        };
        page_from_counted(
            rows,
            |row| {
                Ok((
                    NearbyEvent {
                        event: row.event.into_event()?,
                        distance_km: row.distance_km,
                    },
                    row.total,
                ))
            },
            count_rows,
        )
        .await
    }

    #[tracing::instrument(skip(self), fields(event_id = %request.event_id))]
    async fn reserve_ticket(&self, request: &NewReservation) -> Result<ReserveOutcome, StoreError> {
        if let Some(details) = self.reserve_once(request).await? {
            return Ok(ReserveOutcome::Reserved(Box::new(details)));
        }
        let state: Option<(bool, bool)> = sqlx::query_as(
            "SELECT start_time <= now(), tickets_sold >= total_tickets FROM events WHERE id = $1",
        )
        .bind(request.event_id)
        .fetch_optional(&self.pool)
        .await?;
        match state {
            None => Ok(ReserveOutcome::EventNotFound),
            Some((true, _)) => Ok(ReserveOutcome::EventStarted),
            Some((false, sold_out)) => {
                // Looks sold out: release this event's due holds, then try once more.
                let released: (i64, i64) = sqlx::query_as(expire_holds!("AND event_id = $2"))
                    .bind(i64::MAX)
                    .bind(request.event_id)
                    .fetch_one(&self.pool)
                    .await?;
                if sold_out && released.0 == 0 {
                    return Ok(ReserveOutcome::SoldOut);
                }
                Ok(match self.reserve_once(request).await? {
                    Some(details) => ReserveOutcome::Reserved(Box::new(details)),
                    None => ReserveOutcome::SoldOut,
                })
            }
        }
    }

    #[tracing::instrument(skip(self))]
    async fn pay_ticket(&self, ticket_id: Uuid, user_id: Uuid) -> Result<TicketChange, StoreError> {
        // The deadline is judged by the database clock inside the row lock: a payment and the
        // sweeper racing for one ticket cannot both win.
        let row: Option<TicketRow> = sqlx::query_as(concat!(
            "WITH t AS (
                UPDATE tickets SET status = 'paid', paid_at = now(), updated_at = now()
                WHERE id = $1 AND user_id = $2 AND status = 'reserved' AND expires_at > now()
                RETURNING *
            ) SELECT ",
            ticket_columns!(),
            " FROM t",
            ticket_joins!()
        ))
        .bind(ticket_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(TicketChange::Done(Box::new(row.into_details()?))),
            None => self.diagnose_ticket(ticket_id, user_id).await,
        }
    }

    #[tracing::instrument(skip(self))]
    async fn cancel_ticket(
        &self,
        ticket_id: Uuid,
        user_id: Uuid,
    ) -> Result<TicketChange, StoreError> {
        let row: Option<TicketRow> = sqlx::query_as(
            "WITH t AS (
                UPDATE tickets SET status = 'cancelled', updated_at = now()
                WHERE id = $1 AND user_id = $2 AND status = 'reserved' AND expires_at > now()
                RETURNING *
            ), seat AS (
                UPDATE events e SET tickets_sold = e.tickets_sold - 1, updated_at = now()
                FROM t WHERE e.id = t.event_id
                RETURNING e.id, e.title, e.start_time, e.end_time, e.venue_name, e.city, e.state
            )
            SELECT t.id, t.user_id, t.event_id, t.status, t.expires_at, t.paid_at, t.created_at,
                   t.updated_at, u.name AS user_name, u.email AS user_email,
                   seat.title AS event_title, seat.start_time AS event_start_time,
                   seat.end_time AS event_end_time, seat.venue_name AS event_venue_name,
                   seat.city AS event_city, seat.state AS event_state
            FROM t JOIN seat ON seat.id = t.event_id JOIN users u ON u.id = t.user_id",
        )
        .bind(ticket_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(TicketChange::Done(Box::new(row.into_details()?))),
            None => self.diagnose_ticket(ticket_id, user_id).await,
        }
    }

    async fn find_ticket(&self, id: Uuid) -> Result<Option<TicketDetails>, StoreError> {
        let row: Option<TicketRow> = sqlx::query_as(concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM tickets t",
            ticket_joins!(),
            "WHERE t.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(TicketRow::into_details).transpose()
    }

    async fn user_tickets(
        &self,
        user_id: Uuid,
        status: Option<TicketStatus>,
        skip: i64,
        limit: i64,
    ) -> Result<Page<TicketDetails>, StoreError> {
        let push_filter = |builder: &mut QueryBuilder<'_, Postgres>| {
            builder.push("WHERE t.user_id = ").push_bind(user_id);
            builder.push(match status {
                None => "",
                Some(TicketStatus::Reserved) => " AND t.status = 'reserved' AND t.expires_at > now()",
                Some(TicketStatus::Expired) => {
                    " AND (t.status = 'expired' OR (t.status = 'reserved' AND t.expires_at <= now()))"
                }
                Some(TicketStatus::Paid) => " AND t.status = 'paid'",
                Some(TicketStatus::Cancelled) => " AND t.status = 'cancelled'",
            });
        };
        let mut builder = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            ticket_columns!(),
            ", count(*) OVER () AS total FROM tickets t",
            ticket_joins!()
        ));
        push_filter(&mut builder);
        builder
            .push(" ORDER BY t.created_at DESC, t.id DESC LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(skip);
        let rows: Vec<CountedTicketRow> = builder.build_query_as().fetch_all(&self.pool).await?;
        let count_rows = async {
            let mut builder = QueryBuilder::<Postgres>::new("SELECT count(*) FROM tickets t ");
            push_filter(&mut builder);
            let total: i64 = builder.build_query_scalar().fetch_one(&self.pool).await?;
            Ok(total)
        };
        page_from_counted(
            rows,
            |row| Ok((row.ticket.into_details()?, row.total)),
            count_rows,
        )
        .await
    }

    #[tracing::instrument(skip(self))]
    async fn expire_due_tickets(&self, batch_size: i64) -> Result<u64, StoreError> {
        let (expired, _events): (i64, i64) = sqlx::query_as(expire_holds!(""))
            .bind(batch_size)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(expired).unwrap_or_default())
    }

    async fn claim_idempotency_key(
        &self,
        user_id: Uuid,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyClaim, StoreError> {
        // A key older than 24 h is forgotten: the new request takes it over.
        let claimed = sqlx::query_scalar::<_, i32>(
            "INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, key) DO UPDATE
                SET request_hash = EXCLUDED.request_hash, response_status = NULL,
                    response_body = NULL, created_at = now()
                WHERE idempotency_keys.created_at < now() - interval '24 hours'
             RETURNING 1",
        )
        .bind(user_id)
        .bind(key)
        .bind(request_hash)
        .fetch_optional(&self.pool)
        .await?;
        if claimed.is_some() {
            return Ok(IdempotencyClaim::Claimed);
        }
        let (stored_hash, status, body): (String, Option<i16>, Option<String>) = sqlx::query_as(
            "SELECT request_hash, response_status, response_body FROM idempotency_keys
             WHERE user_id = $1 AND key = $2",
        )
        .bind(user_id)
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        Ok(idempotency_state(
            request_hash,
            &stored_hash,
            status.map(i64::from),
            body,
        ))
    }

    async fn complete_idempotency_key(
        &self,
        user_id: Uuid,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET response_status = $3, response_body = $4
             WHERE user_id = $1 AND key = $2",
        )
        .bind(user_id)
        .bind(key)
        .bind(i16::try_from(status).unwrap_or(500))
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_idempotency_key(&self, user_id: Uuid, key: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys
             WHERE user_id = $1 AND key = $2 AND response_status IS NULL",
        )
        .bind(user_id)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn purge_idempotency_keys(&self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let purged = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(older_than)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(purged)
    }
}
