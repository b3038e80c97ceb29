//! PostgreSQL + PostGIS store. Each guarantee lives in one statement or one short transaction
//! (orders: a batch's, see [`batch`]), and deadlines are judged by the database clock
//! (`now()`), the one clock every server process shares (scans, which carry their own
//! `scanned_at`, are judged by the process clock: [`scan_tx`]). Orders and scans are
//! written in lanes ([`lanes`]) of group commits.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, FromRow, Postgres, QueryBuilder, Transaction};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use self::lanes::{LaneRuntime, Lanes};
use self::sold_out::SoldOut;
use super::ledger;
use super::order_batch::OrderRequest;
use super::scans::ScanRequest;
use super::sql::{self, CredentialsRow};
use super::waitlist::JoinAsk;
use super::{
    AvailabilityNews, Backend, BuyerFilter, ChangeCursor, ClaimTerms, CodeReissue, EventChanges,
    EventFilter, EventStore, HeldKey, IdempotencyClaim, IdempotencyStore, Infrastructure, KeyUse,
    NearbyQuery, OrderAction, Page, PoolStats, Position, RequestKey, SearchableEvents, StoreError,
    StoreOptions, StoreResult, TicketStore, TierChange, UserStore,
};
use crate::domain::waitlist::Joined;
use crate::domain::{
    Change, Event, EventAvailability, EventDelete, EventDetails, EventDraft, EventStats,
    EventUpdate, GeoPoint, NearbyEvent, NewEvent, NewOrder, NewUser, OrderChange, OrderDetails,
    OrderOutcome, PageRequest, Redeemed, TicketDetails, TicketOrder, TierOutcome, User,
    WriteOutcome,
};

/// The advisory lock of the buyer history fold (any constant no other lock uses).
const FOLD_LOCK: i64 = 0x6e74_785f_666f_6c64;

type UserRow = sql::UserRow<DateTime<Utc>>;
type EventRow = sql::EventRow<DateTime<Utc>>;
type TicketRow = sql::TicketRow<DateTime<Utc>>;
type KeyRow = sql::KeyRow<DateTime<Utc>>;
type OrderRow = sql::OrderRow<DateTime<Utc>>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
/// `application_name` of the listening connection, as `pg_stat_activity` shows it, followed by
/// the process id (`nearbytix-listener-4242`): an operator can tell whose it is.
pub const LISTENER_NAME: &str = "nearbytix-listener";

mod batch;
mod cancel_lanes;
mod dialect;
mod join_lanes;
mod lanes;
mod notifications;
mod scan_lanes;
mod sold_out;

pub struct PgStore {
    pool: PgPool,
    orders: Arc<Lanes<batch::Writer>>,
    scans: Arc<Lanes<scan_lanes::ScanWriter>>,
    cancels: Arc<Lanes<cancel_lanes::CancelWriter>>,
    joins: Arc<Lanes<join_lanes::JoinWriter>>,
    /// The lanes' connections.
    lanes_pool: PgPool,
    sold_out: Arc<SoldOut>,
    /// The notification listener's own pool (its one connection is held for good).
    listener_pool: PgPool,
    /// The change log's reader: a connection of its own, so that following the database never
    /// waits behind the requests it is meant to spare.
    follower: PgPool,
    listener: tokio::task::JoinHandle<()>,
    events_changed: Arc<watch::Sender<()>>,
    availability_news: broadcast::Sender<AvailabilityNews>,
}

/// Settings of the request pool and of the lanes' pool. sqlx pings a connection before
/// every use by default: one more round trip per request. A connection used within the last
/// second is taken as it is (should it have died since, its statement fails like any other
/// that meets a lost database, and the connection is dropped); one idle for longer is pinged.
fn pool_options(max_connections: u32, acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > TRUSTED_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Kinds of writes in lanes (orders, scans, cancellations, waiting-list joins): each has
/// [`lanes::LANES`] connections of the lanes' pool.
const LANE_KINDS: u32 = 4;

/// How long a pooled connection may have been idle and still be used without a ping.
const TRUSTED_IDLE: Duration = Duration::from_secs(1);

impl PgStore {
    pub async fn connect(options: &StoreOptions) -> anyhow::Result<Self> {
        // The URL may carry a password: never echo it.
        // Requests are short and many run at once: parallel workers for one query only add
        // start-up cost and contend with the other requests for the same cores.
        let connect_options = PgConnectOptions::from_str(&options.url)
            .context("DATABASE_URL is not a valid PostgreSQL URL")?
            .options([("max_parallel_workers_per_gather", "0")]);
        let pool = pool_options(options.max_connections, options.acquire_timeout)
            .connect_with(connect_options.clone())
            .await
            .context("could not connect to PostgreSQL at DATABASE_URL")?;
        ensure_postgis_available(&pool).await?;
        MIGRATOR
            .run(&pool)
            .await
            .context("applying the PostgreSQL migrations")?;
        let follower = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect_options.clone());
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(
                connect_options
                    .clone()
                    .application_name(&format!("{LISTENER_NAME}-{}", std::process::id())),
            );
        let sold_out = Arc::new(SoldOut::default());
        let events_changed = Arc::new(watch::Sender::new(()));
        let (availability_news, _) = broadcast::channel(notifications::AVAILABILITY_NEWS_KEPT);
        let relay = notifications::Relay {
            sold_out: Arc::clone(&sold_out),
            events_changed: Arc::clone(&events_changed),
            availability_news: availability_news.clone(),
        };
        let listener = notifications::listen(listener_pool.clone(), relay).await;
        let (runtime, lanes_pool) = LaneRuntime::start(
            pool_options(LANE_KINDS * lanes::LANES, options.acquire_timeout),
            connect_options,
        )?;
        let orders = Lanes::new(
            batch::Writer {
                pool: lanes_pool.clone(),
                sold_out: Arc::clone(&sold_out),
            },
            Arc::clone(&runtime),
        );
        let scans = Lanes::new(
            scan_lanes::ScanWriter {
                pool: lanes_pool.clone(),
            },
            Arc::clone(&runtime),
        );
        let cancels = Lanes::new(
            cancel_lanes::CancelWriter {
                pool: lanes_pool.clone(),
                sold_out: Arc::clone(&sold_out),
            },
            Arc::clone(&runtime),
        );
        let joins = Lanes::new(
            join_lanes::JoinWriter {
                pool: lanes_pool.clone(),
            },
            runtime,
        );
        Ok(Self {
            orders,
            scans,
            cancels,
            joins,
            lanes_pool,
            pool,
            sold_out,
            listener_pool,
            follower,
            listener,
            events_changed,
            availability_news,
        })
    }

    async fn key_row(&self, key: RequestKey<'_>) -> StoreResult<Option<KeyRow>> {
        let row = sqlx::query_as(sql::PEEK_KEY)
            .bind(key.user_id)
            .bind(key.key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row)
    }

    async fn event_owner(&self, id: Uuid) -> StoreResult<Option<Uuid>> {
        let owner = sqlx::query_scalar(sql::EVENT_OWNER)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(owner)
    }
}

/// Begins a transaction; should the connection turn out dead (one used within
/// [`TRUSTED_IDLE`] is not pinged first), once more on another: nothing has been done yet.
pub(super) async fn begin(pool: &PgPool) -> StoreResult<Transaction<'static, Postgres>> {
    match pool.begin().await {
        Err(error) if StoreError::connection_lost(&error) => Ok(pool.begin().await?),
        begun => Ok(begun?),
    }
}

payment_store!(PgStore, Postgres, pool);
checkin_list_store!(PgStore, Postgres, pool);
scan_store!(PgStore, Postgres, Transaction<'static, Postgres>, pool);
waitlist_store!(PgStore, Postgres, pool, |_| batch::PgStatements);

impl PgStore {
    /// Cancels an order that looks cancellable in its event's lane, with the cancellations
    /// that arrive together; `None`: not done there (the order is not one `user_id` may cancel
    /// now, or the lanes are full), for the one-order path.
    async fn cancel_batched(
        &self,
        order_id: Uuid,
        user_id: Uuid,
    ) -> StoreResult<Option<OrderDetails>> {
        let glance: Option<(Uuid, bool)> = sqlx::query_as(super::order_batch::CANCELLABLE)
            .bind(order_id)
            .bind(user_id)
            .bind(Utc::now())
            .fetch_optional(&self.pool)
            .await?;
        let Some((event_id, true)) = glance else {
            return Ok(None);
        };
        let request = super::order_batch::CancelRequest {
            order_id,
            user_id,
            event_id,
        };
        match self.cancels.write(request).await {
            Err(StoreError::Busy) => Ok(None),
            written => written,
        }
    }

    /// A write transaction with the database's clock.
    async fn write_tx(&self) -> StoreResult<(Transaction<'static, Postgres>, DateTime<Utc>)> {
        begin_write(&self.pool).await
    }

    async fn scan_tx(&self) -> StoreResult<(Transaction<'static, Postgres>, DateTime<Utc>)> {
        scan_tx(&self.pool).await
    }

    /// Redeems a scan in its lane's next transaction.
    async fn redeem_scan(&self, request: ScanRequest) -> StoreResult<Redeemed> {
        self.scans.write(request).await
    }

    /// Writes a join in its event's lane's next transaction.
    async fn join_line(&self, ask: JoinAsk) -> StoreResult<Joined> {
        self.joins.write(ask).await
    }
}

/// A write transaction judged by this process's clock, as a scan is (its `scanned_at` and the
/// skew allowed are this clock's too): one round trip fewer than [`begin_write`], on the
/// door's hot path.
async fn scan_tx(pool: &PgPool) -> StoreResult<(Transaction<'static, Postgres>, DateTime<Utc>)> {
    // Microseconds, as stored: a replayed answer shows the same instant.
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    Ok((begin(pool).await?, now))
}

async fn begin_write(
    pool: &PgPool,
) -> StoreResult<(Transaction<'static, Postgres>, DateTime<Utc>)> {
    let mut tx = begin(pool).await?;
    let now = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await?;
    Ok((tx, now))
}

/// One order with its items and tickets, read on `conn`.
async fn order_on(conn: &mut PgConnection, id: Uuid) -> StoreResult<Option<OrderDetails>> {
    let row: Option<OrderRow> = sqlx::query_as(sql::FIND_ORDER)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(orders_with_parts(conn, row.into_iter().collect())
        .await?
        .pop())
}

/// Records a keyed change's outcome with its work (a refused one records nothing), and commits.
async fn finish(
    mut tx: Transaction<'static, Postgres>,
    key: Option<&HeldKey>,
    change: OrderChange,
) -> StoreResult<OrderChange> {
    if let (Some(key), Change::Done(order)) = (key, &change) {
        let outcome = WriteOutcome::Order(order.clone());
        if !sql::record_outcome_on::<Postgres>(&mut tx, key, &outcome).await? {
            return Err(StoreError::ClaimLost);
        }
    }
    tx.commit().await?;
    Ok(change)
}

/// Orders with their items and tickets, read in two statements for any number of orders.
async fn orders_with_parts(
    conn: &mut PgConnection,
    rows: Vec<OrderRow>,
) -> StoreResult<Vec<OrderDetails>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(OrderRow::id).collect();
    let items = sqlx::query_as(&format!(
        "{} WHERE order_id = ANY($1){}",
        sql::SELECT_ORDER_ITEMS,
        sql::ORDER_ITEMS_ORDER
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let tickets: Vec<TicketRow> = sqlx::query_as(&format!(
        "{}WHERE t.order_id = ANY($1){}",
        sql::SELECT_ORDER_TICKETS,
        sql::ORDER_TICKETS_ORDER
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    sql::assemble_orders(rows, items, tickets)
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

#[async_trait]
impl Infrastructure for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn change_announcements(&self) -> watch::Receiver<()> {
        self.events_changed.subscribe()
    }

    fn availability_news(&self) -> broadcast::Receiver<AvailabilityNews> {
        self.availability_news.subscribe()
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.lanes_pool.close().await;
        self.listener_pool.close().await;
        self.listener.abort();
        self.follower.close().await;
        self.pool.close().await;
    }
}

#[async_trait]
impl UserStore for PgStore {
    #[tracing::instrument(skip_all)]
    async fn insert_user(&self, user: &NewUser) -> StoreResult<User> {
        let row: UserRow = sql::bind_new_user(sqlx::query_as(sql::INSERT_USER), user)
            .bind(Utc::now())
            .fetch_one(&self.pool)
            .await?;
        row.into_user()
    }

    #[tracing::instrument(skip_all)]
    async fn find_credentials(&self, email: &str) -> StoreResult<Option<(User, String)>> {
        let row: Option<CredentialsRow<DateTime<Utc>>> = sqlx::query_as(concat!(
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

    async fn user_exists(&self, id: Uuid) -> StoreResult<bool> {
        let exists = sqlx::query_scalar(sql::USER_EXISTS).bind(id);
        Ok(exists.fetch_one(&self.pool).await?)
    }

    async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        fetch_optional!(&self.pool, sql::FIND_USER, UserRow::into_user, id)
    }

    #[tracing::instrument(skip(self))]
    async fn set_user_location(&self, id: Uuid, location: GeoPoint) -> StoreResult<Option<User>> {
        let (lat, lon, now) = (location.latitude(), location.longitude(), Utc::now());
        fetch_optional!(
            &self.pool,
            sql::SET_USER_LOCATION,
            UserRow::into_user,
            id,
            lat,
            lon,
            now
        )
    }
}

#[async_trait]
impl EventStore for PgStore {
    #[tracing::instrument(skip(self, event))]
    async fn insert_event(&self, creator_id: Uuid, event: &NewEvent) -> StoreResult<EventDetails> {
        let (mut tx, now) = begin_write(&self.pool).await?;
        let inserted = sql::insert_event_on::<Postgres>(&mut tx, creator_id, event, now).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    #[tracing::instrument(skip(self, change))]
    async fn change_tier(
        &self,
        event_id: Uuid,
        creator_id: Uuid,
        change: TierChange<'_>,
    ) -> StoreResult<TierOutcome> {
        let (mut tx, now) = begin_write(&self.pool).await?;
        let outcome = sql::change_tier_on::<Postgres>(
            &mut tx,
            sql::EVENT_OWNER_AND_SEATS_FOR_UPDATE,
            event_id,
            creator_id,
            change,
            now,
        )
        .await?;
        tx.commit().await?;
        self.sold_out.forget(Some(event_id));
        Ok(outcome)
    }

    async fn event_stats(&self, event_id: Uuid) -> StoreResult<Option<(Uuid, EventStats)>> {
        let mut conn = self.pool.acquire().await?;
        sql::event_stats_on::<Postgres>(&mut conn, event_id, Utc::now()).await
    }

    async fn find_event(&self, id: Uuid) -> StoreResult<Option<EventDetails>> {
        let mut conn = self.pool.acquire().await?;
        sql::find_event_on::<Postgres>(&mut conn, id).await
    }

    async fn event_availability(&self, id: Uuid) -> StoreResult<Option<EventAvailability>> {
        let mut conn = self.pool.acquire().await?;
        sql::event_availability_on::<Postgres>(&mut conn, id).await
    }

    async fn bump_clock_instants(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let done = sqlx::query(sql::BUMP_CLOCK_INSTANTS_LOCKED)
            .bind(now)
            .bind(since)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip(self, draft))]
    async fn update_event(
        &self,
        id: Uuid,
        creator_id: Uuid,
        draft: &EventDraft,
    ) -> StoreResult<EventUpdate> {
        let (mut tx, now) = begin_write(&self.pool).await?;
        let update = sql::update_event_on::<Postgres>(
            &mut tx,
            sql::EVENT_SALE_FOR_UPDATE,
            id,
            creator_id,
            draft,
            now,
        );
        let outcome = update.await?;
        tx.commit().await?;
        if let EventUpdate::Done(_) = outcome {
            self.sold_out.forget(Some(id));
        }
        Ok(outcome)
    }

    #[tracing::instrument(skip(self))]
    async fn delete_event(&self, id: Uuid, creator_id: Uuid) -> StoreResult<EventDelete> {
        match self.event_owner(id).await? {
            None => return Ok(EventDelete::NotFound),
            Some(owner) if owner != creator_id => return Ok(EventDelete::NotCreator),
            Some(_) => {}
        }
        let (mut tx, now) = begin_write(&self.pool).await?;
        ledger::expire_due_holds::<Postgres>(&mut tx, Some(&[id]), i64::MAX, now).await?;
        // `tickets_sold` counts reserved and paid tickets, and the row lock taken here orders
        // this delete after (or before) any concurrent reservation of the event.
        let deleted = sqlx::query("DELETE FROM events WHERE id = $1 AND tickets_sold = 0")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        self.sold_out.forget(Some(id));
        Ok(if deleted == 1 {
            EventDelete::Deleted
        } else if self.event_owner(id).await?.is_some() {
            EventDelete::HasTickets
        } else {
            EventDelete::NotFound
        })
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Event>> {
        fetch_events_page!(&self.pool, filter, page)
    }

    #[tracing::instrument(skip(self))]
    async fn nearby_events(&self, query: &NearbyQuery) -> StoreResult<Page<NearbyEvent>> {
        #[derive(FromRow)]
        struct NearbyRow {
            #[sqlx(flatten)]
            event: EventRow,
            distance_km: f64,
        }
        // Spherical distances (use_spheroid = false) so both backends agree exactly; the GiST
        // index on `location` serves ST_DWithin. The filter binds the centre first, so the
        // distance in the select list can name it as `$1, $2`.
        let within = |builder: &mut QueryBuilder<'_, Postgres>| {
            builder
                .push(" WHERE ST_DWithin(e.location, ST_MakePoint(")
                .push_bind(query.center.longitude())
                .push(", ")
                .push_bind(query.center.latitude())
                .push(")::geography, ")
                .push_bind(query.radius.km() * 1000.0)
                .push(concat!(
                    ", false) AND e.start_time > now() AND e.tickets_sold < e.total_tickets
                     AND EXISTS (SELECT 1 FROM ticket_tiers t WHERE t.event_id = e.id AND ",
                    tier_selling_at!("now()"),
                    ")"
                ));
        };
        let select = concat!(
            "SELECT ",
            event_columns!(),
            ", ST_Distance(e.location, ST_MakePoint($1, $2)::geography, false) / 1000.0
                 AS distance_km, count(*) OVER () AS total FROM events e"
        );
        let rows: StoreResult<Page<NearbyRow>> = fetch_page!(
            &self.pool,
            select,
            sql::COUNT_EVENTS,
            within,
            " ORDER BY distance_km, e.start_time, e.id",
            query.page,
            Ok,
        );
        let rows = rows?;
        let distances: Vec<f64> = rows.items.iter().map(|row| row.distance_km).collect();
        let events = events_with_sales!(
            &self.pool,
            rows.items.into_iter().map(|row| row.event).collect()
        )?;
        let items = events
            .into_iter()
            .zip(distances)
            .map(|(event, distance_km)| NearbyEvent { event, distance_km })
            .collect();
        Ok(Page {
            items,
            total: rows.total,
        })
    }

    async fn event_descriptions(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, String>> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, description FROM events WHERE id = ANY($1) AND description IS NOT NULL",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn searchable_events(&self) -> StoreResult<SearchableEvents> {
        // The snapshot first: whatever commits between the two reads is read again next time.
        let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
            .fetch_one(&self.follower)
            .await?;
        let now = Utc::now();
        let rows: Vec<EventRow> = sqlx::query_as(sql::SEARCHABLE_EVENTS)
            .bind(now)
            .fetch_all(&self.follower)
            .await?;
        let sales = sqlx::query_as(sql::SEARCHABLE_TIER_SALES)
            .bind(now)
            .fetch_all(&self.follower)
            .await?;
        sql::searchable_events(ChangeCursor(Position::Snapshot(snapshot)), rows, sales)
    }

    async fn event_changes(&self, since: ChangeCursor) -> StoreResult<EventChanges> {
        // The entries of every transaction the last read could not see (still running, or
        // begun after it), with the snapshot of this read, in one statement: an entry is read
        // once its transaction has committed, whatever the order of commits, and a transaction
        // left open for long costs nothing until it commits.
        let (snapshot, changed): (String, Vec<Uuid>) = sqlx::query_as(
            "SELECT pg_current_snapshot()::text, coalesce(array_agg(DISTINCT event_id), '{}')
             FROM event_changes
             WHERE change_xid >= pg_snapshot_xmax($1::pg_snapshot)
                OR change_xid = ANY(ARRAY(SELECT pg_snapshot_xip($1::pg_snapshot)))",
        )
        .bind(since.snapshot())
        .fetch_one(&self.follower)
        .await?;
        let (rows, sales): (Vec<EventRow>, _) = if changed.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let rows = sqlx::query_as(concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE id = ANY($1)"
            ))
            .bind(&changed)
            .fetch_all(&self.follower)
            .await?;
            let sales = sqlx::query_as(concat!(
                select_tier_sales!(),
                " WHERE t.event_id = ANY($1) ORDER BY t.position"
            ))
            .bind(&changed)
            .fetch_all(&self.follower)
            .await?;
            (rows, sales)
        };
        let cursor = ChangeCursor(Position::Snapshot(snapshot));
        sql::event_changes(cursor, changed, rows, sales)
    }

    async fn fold_buyer_history(&self, users: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        // One folder at a time, whatever the number of processes.
        let folding: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(FOLD_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !folding {
            return Ok(0);
        }
        // Rows a trigger adds meanwhile are not in this statement's snapshot: they stay, for
        // the next fold.
        let folded = sqlx::query(
            "WITH due AS (
                SELECT DISTINCT user_id FROM buyer_history WHERE NOT folded LIMIT $1
             ), gone AS (
                DELETE FROM buyer_history h USING due WHERE h.user_id = due.user_id
                RETURNING h.*
             )
             INSERT INTO buyer_history (user_id, orders_cancelled, orders_expired,
                                        tickets_cancelled, tickets_expired, folded)
             SELECT user_id, sum(orders_cancelled), sum(orders_expired), sum(tickets_cancelled),
                    sum(tickets_expired), true
             FROM gone GROUP BY user_id",
        )
        .bind(users)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(folded)
    }

    async fn purge_event_changes(&self, older_than: DateTime<Utc>) -> StoreResult<u64> {
        let mut purged = 0;
        for statement in sql::PURGE_CHANGE_LOGS {
            let done = sqlx::query(statement)
                .bind(older_than)
                .execute(&self.pool)
                .await?;
            purged += done.rows_affected();
        }
        Ok(purged)
    }
}

#[async_trait]
impl TicketStore for PgStore {
    #[tracing::instrument(skip(self, key), fields(event_id = %order.event_id))]
    async fn place_order(
        &self,
        order: &NewOrder,
        key: Option<&KeyUse>,
    ) -> StoreResult<OrderOutcome> {
        if super::may_refuse_early(key)
            && let Some(refusal) = self.sold_out.answer(order)
        {
            metrics::counter!("nearbytix_order_refusals_from_memory_total").increment(1);
            return Ok(OrderOutcome::Refused(refusal));
        }
        let request = OrderRequest {
            order: order.clone(),
            key: key.cloned(),
        };
        self.orders.write(request).await
    }

    async fn ticket_order(&self, ticket_id: Uuid) -> StoreResult<Option<TicketOrder>> {
        fetch_optional!(&self.pool, sql::TICKET_ORDER, sql::ticket_order, ticket_id)
    }

    async fn find_ticket(&self, id: Uuid) -> StoreResult<Option<TicketDetails>> {
        fetch_optional!(&self.pool, sql::FIND_TICKET, TicketRow::into_details, id)
    }

    async fn user_tickets(&self, filter: &BuyerFilter) -> StoreResult<Page<TicketDetails>> {
        fetch_buyer_page!(
            &self.pool,
            filter,
            sql::BuyerRows::Tickets,
            TicketRow::into_details
        )
    }

    #[tracing::instrument(skip(self, key))]
    async fn change_order(
        &self,
        order_id: Uuid,
        user_id: Uuid,
        action: OrderAction,
        key: Option<&HeldKey>,
    ) -> StoreResult<OrderChange> {
        if action == OrderAction::Cancel
            && key.is_none()
            && let Some(order) = self.cancel_batched(order_id, user_id).await?
        {
            return Ok(OrderChange::Done(Box::new(order)));
        }
        // Not cancelled in a batch: the one-order path does it, or says why not.
        let (mut tx, now) = begin_write(&self.pool).await?;
        let change = sql::change_order_on::<Postgres>(&mut tx, order_id, user_id, action, now);
        let outcome = match change.await? {
            Some(refusal) => refusal,
            None => match order_on(&mut tx, order_id).await? {
                Some(details) => OrderChange::Done(Box::new(details)),
                None => OrderChange::NotFound,
            },
        };
        let outcome = finish(tx, key, outcome).await?;
        if let (OrderAction::Cancel | OrderAction::Refund, Change::Done(details)) =
            (action, &outcome)
        {
            self.sold_out.forget(Some(details.order.event_id));
        }
        Ok(outcome)
    }

    async fn ticket_code_serial(&self, ticket_id: Uuid) -> StoreResult<Option<i32>> {
        let serial = sqlx::query_scalar(sql::CODE_SERIAL)
            .bind(ticket_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(serial)
    }

    #[tracing::instrument(skip(self, key))]
    async fn reissue_code(
        &self,
        ticket_id: Uuid,
        user_id: Uuid,
        per_day: i64,
        signing_key: u16,
        key: Option<&HeldKey>,
    ) -> StoreResult<CodeReissue> {
        let (mut tx, now) = begin_write(&self.pool).await?;
        let reissue = sql::reissue_code_on::<Postgres>(
            &mut tx,
            sql::TICKET_FOR_REISSUE_LOCKED,
            ticket_id,
            user_id,
            per_day,
            signing_key,
            now,
        );
        let outcome = reissue.await?;
        if let (Some(key), CodeReissue::Done(reissued)) = (key, outcome) {
            let reissued = WriteOutcome::CodeReissued(reissued);
            if !sql::record_outcome_on::<Postgres>(&mut tx, key, &reissued).await? {
                return Err(StoreError::ClaimLost);
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn find_order(&self, id: Uuid) -> StoreResult<Option<OrderDetails>> {
        let mut conn = self.pool.acquire().await?;
        let row: Option<OrderRow> = sqlx::query_as(sql::FIND_ORDER)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(orders_with_parts(&mut conn, row.into_iter().collect())
            .await?
            .pop())
    }

    async fn user_orders(&self, filter: &BuyerFilter) -> StoreResult<Page<OrderDetails>> {
        let page: StoreResult<Page<OrderRow>> = fetch_buyer_page!(
            &self.pool,
            filter,
            sql::BuyerRows::Orders,
            |row: OrderRow| Ok(row)
        );
        let page = page?;
        let mut conn = self.pool.acquire().await?;
        Ok(Page {
            items: orders_with_parts(&mut conn, page.items).await?,
            total: page.total,
        })
    }

    #[tracing::instrument(skip(self))]
    async fn expire_due_tickets(&self, batch_size: i64) -> StoreResult<u64> {
        let (mut tx, now) = begin_write(&self.pool).await?;
        let expired = ledger::expire_due_holds::<Postgres>(&mut tx, None, batch_size, now).await?;
        tx.commit().await?;
        Ok(expired)
    }
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn claim_key(
        &self,
        key: RequestKey<'_>,
        request_hash: &str,
        terms: ClaimTerms,
    ) -> StoreResult<IdempotencyClaim> {
        // A new key is taken while the user holds fewer than `quota` others, counted under the
        // lock of the user's quota row (which the order batches take too), so the quota holds
        // exactly; the row's bound is then counted anew (migration 0023). A held key (the quota
        // does not apply to it) is taken over when it is forgotten (24 h) or its holder's lease
        // passed unanswered. The user's row, locked `FOR KEY SHARE`, stays registered until
        // commit: a key is written for a user that exists (there is no foreign key, see
        // migration 0022).
        let mut tx = begin(&self.pool).await?;
        let registered: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE")
                .bind(key.user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if registered.is_none() {
            return Err(StoreError::ForeignKeyViolation);
        }
        // `WHERE false`: an existing row is locked and left as it is.
        sqlx::query(
            "INSERT INTO idempotency_key_quotas AS q (user_id, since, used)
             VALUES ($1, now() - interval '25 hours', 0)
             ON CONFLICT (user_id) DO UPDATE SET used = q.used WHERE false",
        )
        .bind(key.user_id)
        .execute(&mut *tx)
        .await?;
        let claimed = sqlx::query_scalar::<_, i32>(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, claim, lease_until)
             SELECT $1, $2, $3, $4, now() + make_interval(secs => $5)
             WHERE EXISTS (SELECT 1 FROM idempotency_keys WHERE user_id = $1 AND key = $2)
                OR (SELECT count(*) FILTER (WHERE key <> $2
                                            AND created_at > now() - interval '24 hours')
                    FROM idempotency_keys WHERE user_id = $1) < $6
             ON CONFLICT (user_id, key) DO UPDATE
                SET request_hash = EXCLUDED.request_hash, outcome = NULL,
                    created_at = now(), claim = EXCLUDED.claim,
                    lease_until = EXCLUDED.lease_until
                WHERE idempotency_keys.created_at < now() - interval '24 hours'
                   OR (idempotency_keys.outcome IS NULL
                       AND idempotency_keys.request_hash = EXCLUDED.request_hash
                       AND coalesce(idempotency_keys.lease_until <= now(), true))
             RETURNING 1",
        )
        .bind(key.user_id)
        .bind(key.key)
        .bind(request_hash)
        .bind(terms.claim)
        .bind(terms.lease.as_secs_f64())
        .bind(i64::from(terms.quota))
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE idempotency_key_quotas SET since = now() - interval '25 hours',
                 used = (SELECT count(*) FROM idempotency_keys
                         WHERE user_id = $1 AND created_at > now() - interval '25 hours')
             WHERE user_id = $1",
        )
        .bind(key.user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if claimed.is_some() {
            return Ok(IdempotencyClaim::Claimed);
        }
        let row = self.key_row(key).await?;
        if row.is_none() {
            return Ok(IdempotencyClaim::QuotaExceeded);
        }
        // Claimable by this server's clock but not yet by the database's: still in progress.
        let held = sql::KeyRow::held(row, request_hash, Utc::now())?;
        Ok(held.unwrap_or(IdempotencyClaim::InProgress))
    }

    async fn peek_key(
        &self,
        key: RequestKey<'_>,
        request_hash: &str,
    ) -> StoreResult<Option<IdempotencyClaim>> {
        let row = self.key_row(key).await?;
        sql::KeyRow::held(row, request_hash, Utc::now())
    }

    async fn release_key(&self, held: &HeldKey) -> StoreResult<()> {
        sqlx::query(sql::RELEASE_IDEMPOTENCY_KEY)
            .bind(held.user_id)
            .bind(&held.key)
            .bind(held.claim)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_keys(&self, older_than: DateTime<Utc>) -> StoreResult<u64> {
        let purged = sqlx::query(sql::PURGE_IDEMPOTENCY_KEYS)
            .bind(older_than)
            .execute(&self.pool)
            .await?
            .rows_affected();
        // A ticket's reissues count for 24 h, as keys do.
        sqlx::query(sql::PURGE_CODE_REISSUES)
            .bind(older_than)
            .execute(&self.pool)
            .await?;
        Ok(purged)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The listener holds a connection of its own: a dropped store lets it go.
        self.listener.abort();
    }
}
