//! Embedded SQLite store: WAL mode, one writer connection (every write transaction is
//! `BEGIN IMMEDIATE` on it, so writers queue instead of failing) and a pool of readers.
//! Timestamps are stored as microseconds since the Unix epoch ([`Micros`]) and taken from this
//! process's clock.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqliteConnection};
use tokio::sync::watch;
use uuid::Uuid;

use super::ledger;
use super::order_batch::{OrderRequest, Pending};
use super::scans::ScanRequest;
use super::sql::{self, CredentialsRow, Micros};
use super::waitlist::JoinAsk;
use super::{
    Backend, BuyerFilter, ChangeCursor, ClaimTerms, CodeReissue, EventChanges, EventFilter,
    EventStore, HeldKey, IdempotencyClaim, IdempotencyStore, Infrastructure, KeyUse, NearbyQuery,
    OrderAction, Page, PoolStats, Position, RequestKey, SearchableEvents, StoreError, StoreOptions,
    StoreResult, TicketStore, TierChange, UserStore,
};
use crate::domain::waitlist::Joined;
use crate::domain::{
    Change, Event, EventAvailability, EventDelete, EventDetails, EventDraft, EventStats,
    EventUpdate, GeoPoint, NearbyEvent, NewEvent, NewOrder, NewUser, OrderChange, OrderDetails,
    OrderOutcome, OrderRefusal, PageRequest, Redeemed, TicketDetails, TicketOrder, TierOutcome,
    User, WriteOutcome,
};

type UserRow = sql::UserRow<Micros>;
type EventRow = sql::EventRow<Micros>;
type TicketRow = sql::TicketRow<Micros>;
type KeyRow = sql::KeyRow<Micros>;
type OrderRow = sql::OrderRow<Micros>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const READ_CONNECTIONS: u32 = 8;
/// The last entry of the event change log (`?1` when it is empty).
const LOG_END: &str = "SELECT coalesce(max(seq), ?1) FROM event_changes";

mod batch;
mod cancel_batch;
mod dialect;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The change log's reader: a connection of its own, so that following the database never
    /// waits behind the requests it is meant to spare.
    follower: SqlitePool,
    path: PathBuf,
    orders: tokio::sync::mpsc::Sender<Pending>,
    cancels: tokio::sync::mpsc::Sender<cancel_batch::PendingCancel>,
    /// Told of every commit: readers of the event change log in this process look at once.
    committed: Arc<watch::Sender<()>>,
}

/// A write transaction that takes the write lock at once (a deferred one that reads first can
/// fail with "database is locked" when it tries to write, instead of waiting its turn).
impl SqliteStore {
    async fn begin_immediate(&self) -> StoreResult<WriteTx> {
        WriteTx::begin(&self.writer, &self.committed).await
    }

    /// A write transaction and the time its writes are judged by.
    async fn write_tx(&self) -> StoreResult<(WriteTx, DateTime<Utc>)> {
        let tx = self.begin_immediate().await?;
        let now = tx.now();
        Ok((tx, now))
    }

    /// A scan's write transaction: the time is this process's clock already.
    async fn scan_tx(&self) -> StoreResult<(WriteTx, DateTime<Utc>)> {
        self.write_tx().await
    }

    /// Redeems a scan in a transaction of its own (the writer connection serializes them;
    /// one scan is a few statements there).
    async fn redeem_scan(&self, request: ScanRequest) -> StoreResult<Redeemed> {
        let (tx, now) = self.scan_tx().await?;
        super::batch::the_one(scans::redeem_in(tx, now, &[&request]).await?, "scans")
    }

    /// Writes a join in a transaction of its own (the writer connection serializes them).
    async fn join_line(&self, ask: JoinAsk) -> StoreResult<Joined> {
        let (mut tx, now) = self.write_tx().await?;
        let joined = waitlist::join_in(&mut tx, now, &[&ask]).await?;
        // A refused join wrote nothing; the holds it found due stay expired.
        tx.commit().await?;
        super::batch::the_one(joined, "joins")
    }
}

/// A write transaction on the writer connection, kept by hand rather than by sqlx: when a
/// COMMIT fails (a full disk, an I/O error) SQLite may already have rolled back, which sqlx's
/// transaction bookkeeping does not expect (every later BEGIN on the connection would fail).
/// A connection whose transaction did not end cleanly is closed instead of reused; SQLite rolls
/// back whatever it held.
pub(super) struct WriteTx {
    conn: Option<PoolConnection<Sqlite>>,
    /// When the write lock was taken: the time the transaction's writes are judged by (taken
    /// before, it would age by the wait for the lock).
    now: DateTime<Utc>,
    committed: Arc<watch::Sender<()>>,
}

impl WriteTx {
    async fn begin(writer: &SqlitePool, committed: &Arc<watch::Sender<()>>) -> StoreResult<Self> {
        // Owned by the transaction before BEGIN runs: a caller cut off while BEGIN waits for
        // the lock drops the connection (see `Drop`) rather than pooling one mid-transaction.
        let mut tx = Self {
            conn: Some(writer.acquire().await?),
            now: Utc::now(),
            committed: Arc::clone(committed),
        };
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *tx).await?;
        // Stored in microseconds: an answer made from it shows what a later read shows.
        tx.now = Utc::now().trunc_subsecs(6);
        Ok(tx)
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.now
    }

    async fn end(mut self, statement: &'static str) -> StoreResult<()> {
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        let ended = sqlx::query(statement).execute(&mut *conn).await;
        if ended.is_err() {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            conn.close_on_drop();
        }
        ended.map(|_| ()).map_err(StoreError::from)
    }

    /// Makes the writes durable; an error means none of them happened.
    async fn commit(self) -> StoreResult<()> {
        let committed = Arc::clone(&self.committed);
        self.end("COMMIT").await?;
        committed.send_replace(());
        Ok(())
    }

    async fn rollback(self) -> StoreResult<()> {
        self.end("ROLLBACK").await
    }

    /// Records a keyed change's outcome with its work (a refused one records nothing), and
    /// commits.
    async fn finish(
        mut self,
        key: Option<&HeldKey>,
        change: OrderChange,
    ) -> StoreResult<OrderChange> {
        if let (Some(key), Change::Done(order)) = (key, &change) {
            let outcome = WriteOutcome::Order(order.clone());
            if !sql::record_outcome_on::<Sqlite>(&mut self, key, &outcome).await? {
                self.rollback().await?;
                return Err(StoreError::ClaimLost);
            }
        }
        self.commit().await?;
        Ok(change)
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn
            .as_deref()
            .expect("an open transaction has its connection")
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_deref_mut()
            .expect("an open transaction has its connection")
    }
}

impl Drop for WriteTx {
    /// Abandoned mid-way (an error returned early): the connection goes, and its transaction
    /// with it.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
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
            .connect_with(base.clone().read_only(true))
            .await?;
        let follower = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.read_only(true))
            .await?;
        let committed = Arc::new(watch::Sender::new(()));
        Ok(Self {
            orders: batch::spawn(writer.clone(), Arc::clone(&committed), batch::PlaceOrders),
            cancels: batch::spawn(
                writer.clone(),
                Arc::clone(&committed),
                cancel_batch::CancelOrders,
            ),
            committed,
            writer,
            reader,
            follower,
            path,
        })
    }

    /// Places an order together with whatever other orders arrived at the same time (see
    /// [`batch`]).
    async fn place_batched(&self, request: OrderRequest) -> StoreResult<OrderOutcome> {
        let (pending, answer) = Pending::new(request);
        if self.orders.send(pending).await.is_err() {
            return Err(sqlx::Error::WorkerCrashed.into());
        }
        answer.wait().await
    }

    /// Cancels an order that looks cancellable in the writer's next batch of cancellations;
    /// `None`: not done there (the order is not one `user_id` may cancel now, or the batching
    /// task is gone), for the one-order path.
    async fn cancel_batched(
        &self,
        order_id: Uuid,
        user_id: Uuid,
    ) -> StoreResult<Option<OrderDetails>> {
        let glance: Option<(Uuid, bool)> = sqlx::query_as(super::order_batch::CANCELLABLE)
            .bind(order_id)
            .bind(user_id)
            .bind(Micros::from(Utc::now()))
            .fetch_optional(&self.reader)
            .await?;
        let Some((event_id, true)) = glance else {
            return Ok(None);
        };
        let request = super::order_batch::CancelRequest {
            order_id,
            user_id,
            event_id,
        };
        let (pending, answer) = cancel_batch::PendingCancel::new(request);
        if self.cancels.send(pending).await.is_err() {
            tracing::error!("the cancellation batching task is gone: cancelling one by one");
            return Ok(None);
        }
        answer.wait().await
    }

    /// An order for an event that is missing, started or (when `sold_out_answers`) sold out,
    /// refused from a read without the writer; `None` when only the writer can tell (seats
    /// left, due holds to release, or rules to check first).
    async fn refusal_without_writing(
        &self,
        event_id: Uuid,
        now: DateTime<Utc>,
        sold_out_answers: bool,
    ) -> StoreResult<Option<OrderRefusal>> {
        let state = sqlx::query_as(sql::SALE_AT_A_GLANCE)
            .bind(event_id)
            .bind(Micros::from(now))
            .fetch_optional(&self.reader)
            .await?;
        Ok(sql::refusal_at_a_glance(state, sold_out_answers))
    }

    async fn reader(&self) -> StoreResult<PoolConnection<Sqlite>> {
        Ok(self.reader.acquire().await?)
    }
}

/// A ticket with its summaries, read on `conn` (inside a write transaction, say).
pub(super) async fn ticket_details_on(
    conn: &mut SqliteConnection,
    id: Uuid,
) -> StoreResult<Option<TicketDetails>> {
    let row: Option<TicketRow> = sqlx::query_as(sql::FIND_TICKET)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(TicketRow::into_details).transpose()
}

/// One order with its items and tickets, read on `conn`.
async fn order_on(conn: &mut SqliteConnection, id: Uuid) -> StoreResult<Option<OrderDetails>> {
    let row: Option<OrderRow> = sqlx::query_as(sql::FIND_ORDER)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(orders_with_parts(conn, row.into_iter().collect())
        .await?
        .pop())
}

payment_store!(SqliteStore, Sqlite, reader);
checkin_list_store!(SqliteStore, Sqlite, reader);
scan_store!(SqliteStore, Sqlite, WriteTx, reader);
waitlist_store!(SqliteStore, Sqlite, reader, |now| batch::SqliteStatements {
    now
});

/// Orders with their items and tickets, read in two statements for any number of orders.
async fn orders_with_parts(
    conn: &mut SqliteConnection,
    rows: Vec<OrderRow>,
) -> StoreResult<Vec<OrderDetails>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let of_orders = |select: &str, column: &str, order: &str| {
        let mut builder = QueryBuilder::<Sqlite>::new(select);
        builder.push(format!(" WHERE {column} IN ("));
        let mut ids = builder.separated(", ");
        for row in &rows {
            ids.push_bind(row.id());
        }
        builder.push(")").push(order);
        builder
    };
    let mut items = of_orders(sql::SELECT_ORDER_ITEMS, "order_id", sql::ORDER_ITEMS_ORDER);
    let items = items.build_query_as().fetch_all(&mut *conn).await?;
    let mut tickets = of_orders(
        sql::SELECT_ORDER_TICKETS,
        "t.order_id",
        sql::ORDER_TICKETS_ORDER,
    );
    let tickets: Vec<TicketRow> = tickets.build_query_as().fetch_all(&mut *conn).await?;
    sql::assemble_orders(rows, items, tickets)
}

/// `… IN (?, ?, …)` over `ids`.
pub(super) fn push_ids(query: &mut QueryBuilder<'_, Sqlite>, ids: &[Uuid]) {
    query.push(" IN (");
    let mut separated = query.separated(", ");
    for id in ids {
        separated.push_bind(*id);
    }
    query.push(")");
}

#[async_trait]
impl Infrastructure for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn database_file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn change_announcements(&self) -> watch::Receiver<()> {
        self.committed.subscribe()
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.writer.size() + self.reader.size(),
            idle: u32::try_from(self.writer.num_idle() + self.reader.num_idle())
                .unwrap_or(u32::MAX),
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// A write through the writer and a commit: reading alone would call a full disk or a
    /// read-only file healthy.
    async fn probe_write(&self) -> StoreResult<()> {
        let mut tx = self.begin_immediate().await?;
        sqlx::query("INSERT OR REPLACE INTO health_probe (id, checked_at) VALUES (1, ?)")
            .bind(Micros::from(Utc::now()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn close(&self) {
        self.reader.close().await;
        self.follower.close().await;
        self.writer.close().await;
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn insert_user(&self, user: &NewUser) -> StoreResult<User> {
        // In a transaction of its own: an autocommit INSERT … RETURNING hands back its row
        // before the commit, and a failed commit (full disk) would go unnoticed.
        let mut tx = self.begin_immediate().await?;
        let row: UserRow = sql::bind_new_user(sqlx::query_as(sql::INSERT_USER), user)
            .bind(Micros::from(Utc::now()))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row.into_user()
    }

    #[tracing::instrument(skip_all)]
    async fn find_credentials(&self, email: &str) -> StoreResult<Option<(User, String)>> {
        let row: Option<CredentialsRow<Micros>> = sqlx::query_as(concat!(
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

    async fn user_exists(&self, id: Uuid) -> StoreResult<bool> {
        let exists = sqlx::query_scalar(sql::USER_EXISTS).bind(id);
        Ok(exists.fetch_one(&self.reader).await?)
    }

    async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        fetch_optional!(&self.reader, sql::FIND_USER, UserRow::into_user, id)
    }

    #[tracing::instrument(skip(self))]
    async fn set_user_location(&self, id: Uuid, location: GeoPoint) -> StoreResult<Option<User>> {
        let mut tx = self.begin_immediate().await?;
        let row: Option<UserRow> = sqlx::query_as(sql::SET_USER_LOCATION)
            .bind(id)
            .bind(location.latitude())
            .bind(location.longitude())
            .bind(Micros::from(Utc::now()))
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.map(UserRow::into_user).transpose()
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    #[tracing::instrument(skip(self, event))]
    async fn insert_event(&self, creator_id: Uuid, event: &NewEvent) -> StoreResult<EventDetails> {
        let mut tx = self.begin_immediate().await?;
        let now = tx.now();
        let inserted = sql::insert_event_on::<Sqlite>(&mut tx, creator_id, event, now).await?;
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
        let mut tx = self.begin_immediate().await?;
        let now = tx.now();
        let outcome = sql::change_tier_on::<Sqlite>(
            &mut tx,
            sql::EVENT_OWNER_AND_SEATS,
            event_id,
            creator_id,
            change,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn event_stats(&self, event_id: Uuid) -> StoreResult<Option<(Uuid, EventStats)>> {
        let mut conn = self.reader.acquire().await?;
        sql::event_stats_on::<Sqlite>(&mut conn, event_id, Utc::now()).await
    }

    async fn find_event(&self, id: Uuid) -> StoreResult<Option<EventDetails>> {
        let mut conn = self.reader.acquire().await?;
        sql::find_event_on::<Sqlite>(&mut conn, id).await
    }

    async fn event_availability(&self, id: Uuid) -> StoreResult<Option<EventAvailability>> {
        let mut conn = self.reader.acquire().await?;
        sql::event_availability_on::<Sqlite>(&mut conn, id).await
    }

    async fn bump_clock_instants(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let due: bool = sqlx::query_scalar(sql::CLOCK_INSTANTS_DUE)
            .bind(Micros::from(now))
            .bind(Micros::from(since))
            .fetch_one(&self.reader)
            .await?;
        if !due {
            return Ok(0);
        }
        let mut tx = self.begin_immediate().await?;
        let done = sqlx::query(sql::BUMP_CLOCK_INSTANTS)
            .bind(Micros::from(now))
            .bind(Micros::from(since))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip(self, draft))]
    async fn update_event(
        &self,
        id: Uuid,
        creator_id: Uuid,
        draft: &EventDraft,
    ) -> StoreResult<EventUpdate> {
        let mut tx = self.begin_immediate().await?;
        let now = tx.now();
        let update =
            sql::update_event_on::<Sqlite>(&mut tx, sql::EVENT_SALE, id, creator_id, draft, now);
        let outcome = update.await?;
        tx.commit().await?;
        Ok(outcome)
    }

    #[tracing::instrument(skip(self))]
    async fn delete_event(&self, id: Uuid, creator_id: Uuid) -> StoreResult<EventDelete> {
        let mut tx = self.begin_immediate().await?;
        let now = tx.now();
        let owner: Option<Uuid> = sqlx::query_scalar(sql::EVENT_OWNER)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match owner {
            None => EventDelete::NotFound,
            Some(owner) if owner != creator_id => EventDelete::NotCreator,
            Some(_) => {
                ledger::expire_due_holds::<Sqlite>(&mut tx, Some(&[id]), i64::MAX, now).await?;
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

    async fn list_events(
        &self,
        filter: &EventFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Event>> {
        fetch_events_page!(&self.reader, filter, page)
    }

    #[tracing::instrument(skip(self))]
    async fn nearby_events(&self, query: &NearbyQuery) -> StoreResult<Page<NearbyEvent>> {
        // The R*Tree narrows the search to bounding boxes; exact distances are computed here.
        // Candidates come back as one JSON array (one row instead of thousands: every row
        // would be a hand-off from the connection's thread), and only the page is read in full.
        let now = Micros::from(Utc::now());
        let mut candidates: Vec<(i64, f64, i64, String)> = Vec::new();
        for bbox in query.center.bounding_boxes(query.radius.km()) {
            let json: String = sqlx::query_scalar(concat!(
                "SELECT json_group_array(json_array(seq, latitude, longitude, start_time,
                                                    lower(hex(id))))
                 FROM events_rtree
                 WHERE max_lat >= ?1 AND min_lat <= ?2 AND max_lon >= ?3 AND min_lon <= ?4
                   AND start_time > ?5 AND on_sale
                   AND EXISTS (SELECT 1 FROM events e JOIN ticket_tiers t ON t.event_id = e.id
                               WHERE e.seq = events_rtree.seq AND ",
                tier_selling_at!("?5"),
                ")"
            ))
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
                let distance = query.center.distance_km(&sql::point(latitude, longitude)?);
                if distance <= query.radius.km() {
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
            .skip(usize::try_from(query.page.skip()).unwrap_or(usize::MAX))
            .take(usize::try_from(query.page.limit()).unwrap_or(0))
            .map(|(seq, distance, _, _)| (seq, distance))
            .collect();
        if page.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                total,
            });
        }
        let mut builder = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT seq, ",
            event_columns!(),
            " FROM events WHERE seq IN ("
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
        // An event deleted between the two reads is simply left out.
        let (rows, distances): (Vec<EventRow>, Vec<f64>) = page
            .into_iter()
            .filter_map(|(seq, distance_km)| by_seq.remove(&seq).map(|row| (row, distance_km)))
            .unzip();
        let items = events_with_sales!(&self.reader, rows)?
            .into_iter()
            .zip(distances)
            .map(|(event, distance_km)| NearbyEvent { event, distance_km })
            .collect();
        Ok(Page { items, total })
    }

    async fn event_descriptions(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, String>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut builder = QueryBuilder::<Sqlite>::new(
            "SELECT id, description FROM events WHERE description IS NOT NULL AND id IN (",
        );
        let mut separated = builder.separated(", ");
        for id in ids {
            separated.push_bind(*id);
        }
        builder.push(")");
        let rows: Vec<(Uuid, String)> = builder.build_query_as().fetch_all(&self.reader).await?;
        Ok(rows.into_iter().collect())
    }

    async fn searchable_events(&self) -> StoreResult<SearchableEvents> {
        // The log's end first: whatever commits between the two reads is read again next time.
        let end: i64 = sqlx::query_scalar(LOG_END)
            .bind(0_i64)
            .fetch_one(&self.follower)
            .await?;
        let now = Micros::from(Utc::now());
        let rows: Vec<EventRow> = sqlx::query_as(sql::SEARCHABLE_EVENTS)
            .bind(now)
            .fetch_all(&self.follower)
            .await?;
        let sales = sqlx::query_as(sql::SEARCHABLE_TIER_SALES)
            .bind(now)
            .fetch_all(&self.follower)
            .await?;
        sql::searchable_events(ChangeCursor(Position::Seq(end)), rows, sales)
    }

    async fn event_changes(&self, since: ChangeCursor) -> StoreResult<EventChanges> {
        // One writer at a time: `seq` grows in commit order, so every entry up to the end read
        // here has committed, and the next read starts after it.
        let since = since.seq();
        let end: i64 = sqlx::query_scalar(LOG_END)
            .bind(since)
            .fetch_one(&self.follower)
            .await?;
        let cursor = ChangeCursor(Position::Seq(end));
        if end == since {
            return sql::event_changes(cursor, Vec::new(), Vec::<EventRow>::new(), Vec::new());
        }
        let changed: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT event_id FROM event_changes WHERE seq > ?1 AND seq <= ?2",
        )
        .bind(since)
        .bind(end)
        .fetch_all(&self.follower)
        .await?;
        let rows: Vec<EventRow> = sqlx::query_as(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE id IN
                (SELECT event_id FROM event_changes WHERE seq > ?1 AND seq <= ?2)"
        ))
        .bind(since)
        .bind(end)
        .fetch_all(&self.follower)
        .await?;
        let sales = sqlx::query_as(concat!(
            select_tier_sales!(),
            " WHERE t.event_id IN
                (SELECT event_id FROM event_changes WHERE seq > ?1 AND seq <= ?2)
              ORDER BY t.position"
        ))
        .bind(since)
        .bind(end)
        .fetch_all(&self.follower)
        .await?;
        sql::event_changes(cursor, changed, rows, sales)
    }

    async fn fold_buyer_history(&self, users: i64) -> StoreResult<u64> {
        // A read first: the writer is taken only when there is something to fold.
        let unfolded: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM buyer_history WHERE NOT folded)")
                .fetch_one(&self.reader)
                .await?;
        if !unfolded {
            return Ok(0);
        }
        // Three statements, whatever the number of buyers: each buyer's sum is added marked 2,
        // their other rows deleted, the sums marked folded.
        let mut tx = self.begin_immediate().await?;
        let folded = sqlx::query(
            "INSERT INTO buyer_history (user_id, orders_cancelled, orders_expired,
                                        tickets_cancelled, tickets_expired, folded)
             SELECT user_id, sum(orders_cancelled), sum(orders_expired), sum(tickets_cancelled),
                    sum(tickets_expired), 2
             FROM buyer_history
             WHERE user_id IN (SELECT DISTINCT user_id FROM buyer_history WHERE NOT folded
                               LIMIT ?1)
             GROUP BY user_id",
        )
        .bind(users)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM buyer_history WHERE folded <> 2
               AND user_id IN (SELECT user_id FROM buyer_history WHERE folded = 2)",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE buyer_history SET folded = 1 WHERE folded = 2")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(folded)
    }

    async fn purge_event_changes(&self, older_than: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.begin_immediate().await?;
        let mut purged = 0;
        for statement in sql::PURGE_CHANGE_LOGS {
            let done = sqlx::query(statement)
                .bind(Micros::from(older_than))
                .execute(&mut *tx)
                .await?;
            purged += done.rows_affected();
        }
        tx.commit().await?;
        Ok(purged)
    }
}

#[async_trait]
impl TicketStore for SqliteStore {
    #[tracing::instrument(skip(self, key), fields(event_id = %order.event_id))]
    async fn place_order(
        &self,
        order: &NewOrder,
        key: Option<&KeyUse>,
    ) -> StoreResult<OrderOutcome> {
        // "Sold out" may be answered early only where no rule on a named tier could come
        // first (an unknown tier or a per-order maximum is 422 even when nothing is left).
        if super::may_refuse_early(key) {
            let now = Utc::now();
            let early = self.refusal_without_writing(order.event_id, now, !order.names_tiers());
            if let Some(refusal) = early.await? {
                return Ok(OrderOutcome::Refused(refusal));
            }
        }
        let request = OrderRequest {
            order: order.clone(),
            key: key.cloned(),
        };
        self.place_batched(request).await
    }

    async fn ticket_order(&self, ticket_id: Uuid) -> StoreResult<Option<TicketOrder>> {
        fetch_optional!(
            &self.reader,
            sql::TICKET_ORDER,
            sql::ticket_order,
            ticket_id
        )
    }

    async fn find_ticket(&self, id: Uuid) -> StoreResult<Option<TicketDetails>> {
        ticket_details_on(&mut *self.reader().await?, id).await
    }

    async fn user_tickets(&self, filter: &BuyerFilter) -> StoreResult<Page<TicketDetails>> {
        fetch_buyer_page!(
            &self.reader,
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
        let mut tx = self.begin_immediate().await?;
        let now = tx.now();
        let change = sql::change_order_on::<Sqlite>(&mut tx, order_id, user_id, action, now);
        let outcome = match change.await? {
            Some(refusal) => refusal,
            None => match order_on(&mut tx, order_id).await? {
                Some(details) => OrderChange::Done(Box::new(details)),
                None => OrderChange::NotFound,
            },
        };
        tx.finish(key, outcome).await
    }

    async fn ticket_code_serial(&self, ticket_id: Uuid) -> StoreResult<Option<i32>> {
        let serial = sqlx::query_scalar(sql::CODE_SERIAL)
            .bind(ticket_id)
            .fetch_optional(&self.reader)
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
        let mut tx = self.begin_immediate().await?;
        let now = tx.now();
        let reissue = sql::reissue_code_on::<Sqlite>(
            &mut tx,
            sql::TICKET_FOR_REISSUE,
            ticket_id,
            user_id,
            per_day,
            signing_key,
            now,
        );
        let outcome = reissue.await?;
        if let (Some(key), CodeReissue::Done(reissued)) = (key, outcome) {
            let reissued = WriteOutcome::CodeReissued(reissued);
            if !sql::record_outcome_on::<Sqlite>(&mut tx, key, &reissued).await? {
                tx.rollback().await?;
                return Err(StoreError::ClaimLost);
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn find_order(&self, id: Uuid) -> StoreResult<Option<OrderDetails>> {
        order_on(&mut *self.reader().await?, id).await
    }

    async fn user_orders(&self, filter: &BuyerFilter) -> StoreResult<Page<OrderDetails>> {
        let page: StoreResult<Page<OrderRow>> = fetch_buyer_page!(
            &self.reader,
            filter,
            sql::BuyerRows::Orders,
            |row: OrderRow| Ok(row)
        );
        let page = page?;
        Ok(Page {
            items: orders_with_parts(&mut *self.reader().await?, page.items).await?,
            total: page.total,
        })
    }

    #[tracing::instrument(skip(self))]
    async fn expire_due_tickets(&self, batch_size: i64) -> StoreResult<u64> {
        let mut tx = self.begin_immediate().await?;
        let now = tx.now();
        let expired = ledger::expire_due_holds::<Sqlite>(&mut tx, None, batch_size, now).await?;
        tx.commit().await?;
        Ok(expired)
    }
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_key(
        &self,
        key: RequestKey<'_>,
        request_hash: &str,
        terms: ClaimTerms,
    ) -> StoreResult<IdempotencyClaim> {
        let mut tx = self.begin_immediate().await?;
        let now = tx.now();
        let row: Option<KeyRow> = sqlx::query_as(sql::PEEK_KEY)
            .bind(key.user_id)
            .bind(key.key)
            .fetch_optional(&mut *tx)
            .await?;
        let existed = row.is_some();
        if let Some(held) = sql::KeyRow::held(row, request_hash, now)? {
            tx.rollback().await?;
            return Ok(held);
        }
        // A new key is taken while the user holds fewer than `quota` others; a forgotten or
        // abandoned one is taken over.
        if !existed {
            let held: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM idempotency_keys
                 WHERE user_id = ? AND key <> ? AND created_at > ?",
            )
            .bind(key.user_id)
            .bind(key.key)
            .bind(Micros::from(now - sql::KEY_LIFETIME))
            .fetch_one(&mut *tx)
            .await?;
            if held >= i64::from(terms.quota) {
                tx.rollback().await?;
                return Ok(IdempotencyClaim::QuotaExceeded);
            }
        }
        let lease_until = now
            + Duration::from_std(terms.lease)
                .map_err(|_| StoreError::Corrupt("lease out of range".into()))?;
        sqlx::query(
            "INSERT OR REPLACE INTO idempotency_keys
                (user_id, key, request_hash, created_at, claim, lease_until)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(key.user_id)
        .bind(key.key)
        .bind(request_hash)
        .bind(Micros::from(now))
        .bind(terms.claim)
        .bind(Micros::from(lease_until))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(IdempotencyClaim::Claimed)
    }

    async fn peek_key(
        &self,
        key: RequestKey<'_>,
        request_hash: &str,
    ) -> StoreResult<Option<IdempotencyClaim>> {
        let row: Option<KeyRow> = sqlx::query_as(sql::PEEK_KEY)
            .bind(key.user_id)
            .bind(key.key)
            .fetch_optional(&self.reader)
            .await?;
        sql::KeyRow::held(row, request_hash, Utc::now())
    }

    async fn release_key(&self, held: &HeldKey) -> StoreResult<()> {
        sqlx::query(sql::RELEASE_IDEMPOTENCY_KEY)
            .bind(held.user_id)
            .bind(&held.key)
            .bind(held.claim)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn purge_keys(&self, older_than: DateTime<Utc>) -> StoreResult<u64> {
        let purged = sqlx::query(sql::PURGE_IDEMPOTENCY_KEYS)
            .bind(Micros::from(older_than))
            .execute(&self.writer)
            .await?
            .rows_affected();
        // A ticket's reissues count for 24 h, as keys do.
        sqlx::query(sql::PURGE_CODE_REISSUES)
            .bind(Micros::from(older_than))
            .execute(&self.writer)
            .await?;
        Ok(purged)
    }
}
