//! Group commit on SQLite: orders placed here, cancellations in `cancel_batch.rs`.
//!
//! Every write goes through one connection, and each statement is a hand-off to sqlx's worker
//! thread for it, which costs more than SQLite's work. Orders that arrive together are
//! therefore placed by one task in one transaction ([`order_batch::write_orders`]) with a
//! handful of statements for the whole batch; a batch of one is the plain case.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::{WriteTx, push_ids};
use crate::domain::{OrderDetails, OrderOutcome};
use crate::store::batch::{self, BatchWriter, write as write_batch};
use crate::store::order_batch::{
    self, BatchStatements, BuyerOf, Buyers, Columns, EventTierRow, KeyedOutcome, OrderRequest,
    SaleRow, Sales, split_outcomes,
};
use crate::store::sql::Micros;
use crate::store::{HeldKey, NewKey, StoreResult, ledger};

/// Most orders written in one transaction.
const MAX_BATCH: usize = 64;
/// Most rows one INSERT carries (SQLite bounds the parameters of a statement).
const ROWS_PER_INSERT: usize = 500;

/// What one transaction of the writer does with a batch of requests (orders placed,
/// cancellations): each request's answer, or an error that rolls the whole batch back.
pub(super) trait WriterBatch: Send + Sync + 'static {
    type Request: Send + Sync + 'static;
    type Outcome: Send + 'static;
    /// What is written, for the log ("orders").
    const WHAT: &'static str;

    fn write_in(
        &self,
        tx: &mut WriteTx,
        requests: &[&Self::Request],
    ) -> impl Future<Output = StoreResult<Vec<StoreResult<Self::Outcome>>>> + Send;
}

/// Starts a batching task for `work`; its requests are sent to the returned channel.
pub(super) fn spawn<W: WriterBatch>(
    writer: SqlitePool,
    committed: Arc<watch::Sender<()>>,
    work: W,
) -> mpsc::Sender<batch::Pending<W::Request, W::Outcome>> {
    let (sender, mut receiver) = mpsc::channel(4 * MAX_BATCH);
    let writer = InTransaction {
        writer,
        committed,
        work,
    };
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
            write_batch(&writer, std::mem::take(&mut batch)).await;
        }
    });
    sender
}

/// A [`WriterBatch`] in a transaction of its own: committed when it answers, rolled back when
/// it fails.
struct InTransaction<W> {
    writer: SqlitePool,
    committed: Arc<watch::Sender<()>>,
    work: W,
}

impl<W: WriterBatch> BatchWriter for InTransaction<W> {
    type Request = W::Request;
    type Outcome = W::Outcome;
    const WHAT: &'static str = W::WHAT;

    async fn write(&self, requests: &[&W::Request]) -> StoreResult<Vec<StoreResult<W::Outcome>>> {
        let mut tx = WriteTx::begin(&self.writer, &self.committed).await?;
        match self.work.write_in(&mut tx, requests).await {
            Ok(outcomes) => {
                tx.commit().await?;
                Ok(outcomes)
            }
            Err(error) => {
                // Whether the rollback works or not, the error is the answer.
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }
}

/// Orders placed together ([`order_batch::write_orders`]).
pub(super) struct PlaceOrders;

impl WriterBatch for PlaceOrders {
    type Request = OrderRequest;
    type Outcome = OrderOutcome;
    const WHAT: &'static str = "orders";

    async fn write_in(
        &self,
        tx: &mut WriteTx,
        orders: &[&OrderRequest],
    ) -> StoreResult<Vec<StoreResult<OrderOutcome>>> {
        let statements = SqliteStatements { now: tx.now() };
        let written = order_batch::write_orders(&statements, tx, orders).await?;
        Ok(written.outcomes)
    }
}

/// SQLite's statements for a batch: the single writer already keeps other writers out, and
/// the batch's writes are judged by the time its write lock was taken.
pub(super) struct SqliteStatements {
    pub now: DateTime<Utc>,
}

impl BatchStatements for SqliteStatements {
    type Conn = SqliteConnection;

    async fn read_sales(
        &self,
        conn: &mut SqliteConnection,
        event_ids: &[Uuid],
    ) -> StoreResult<(DateTime<Utc>, Sales)> {
        let mut query =
            QueryBuilder::new(concat!("SELECT ", sale_columns!(), " FROM events WHERE id"));
        push_ids(&mut query, event_ids);
        let rows: Vec<SaleRow<Micros>> = query.build_query_as().fetch_all(&mut *conn).await?;
        let mut query = QueryBuilder::new(concat!(
            "SELECT ",
            event_tier_columns!(),
            " FROM ticket_tiers WHERE event_id"
        ));
        push_ids(&mut query, event_ids);
        query.push(" ORDER BY event_id, position");
        let tiers: Vec<EventTierRow<Micros>> = query.build_query_as().fetch_all(&mut *conn).await?;
        Ok((self.now, order_batch::sales(rows, tiers, self.now)?))
    }

    async fn read_buyers(
        &self,
        conn: &mut SqliteConnection,
        wanted: &[BuyerOf],
        now: DateTime<Utc>,
    ) -> StoreResult<Buyers> {
        if wanted.is_empty() {
            return Ok(Buyers::new());
        }
        let mut query = QueryBuilder::new("WITH p(user_id, event_id, capped) AS (");
        query.push_values(wanted, |mut row, buyer| {
            row.push_bind(buyer.user_id)
                .push_bind(buyer.event_id)
                .push_bind(buyer.capped);
        });
        query.push(
            ") SELECT p.user_id, p.event_id, u.name, u.email,
                CASE WHEN p.capped THEN (SELECT count(*) FROM tickets t
                     WHERE t.user_id = p.user_id AND t.event_id = p.event_id
                       AND (t.status = 'paid' OR (t.status = 'reserved' AND t.expires_at > ",
        );
        query.push_bind(Micros::from(now));
        query.push("))) ELSE 0 END AS held FROM p JOIN users u ON u.id = p.user_id");
        let rows = query.build_query_as().fetch_all(&mut *conn).await?;
        Ok(order_batch::buyers(rows))
    }

    async fn release_due_holds(
        &self,
        conn: &mut SqliteConnection,
        event_ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        ledger::expire_due_holds::<Sqlite>(conn, Some(event_ids), i64::MAX, now).await
    }

    async fn hold_claims(
        &self,
        conn: &mut SqliteConnection,
        keys: &[&HeldKey],
    ) -> StoreResult<HashSet<Uuid>> {
        // The single writer keeps every other claim out until the batch commits.
        let mut held = HashSet::new();
        for rows in keys.chunks(ROWS_PER_INSERT) {
            let mut query = QueryBuilder::<Sqlite>::new("WITH c(user_id, key, claim) AS (");
            query.push_values(rows, |mut row, key| {
                row.push_bind(key.user_id)
                    .push_bind(key.key.clone())
                    .push_bind(key.claim);
            });
            query.push(
                ") SELECT k.claim FROM idempotency_keys k JOIN c
                   ON k.user_id = c.user_id AND k.key = c.key AND k.claim = c.claim
                 WHERE k.outcome IS NULL",
            );
            let rows: Vec<Uuid> = query.build_query_scalar().fetch_all(&mut *conn).await?;
            held.extend(rows);
        }
        Ok(held)
    }

    async fn free_new_keys(
        &self,
        conn: &mut SqliteConnection,
        keys: &[&NewKey],
        now: DateTime<Utc>,
    ) -> StoreResult<HashMap<(Uuid, String), i64>> {
        let mut free = HashMap::new();
        for rows in keys.chunks(ROWS_PER_INSERT) {
            let mut query = QueryBuilder::<Sqlite>::new("WITH n(user_id, key) AS (");
            query.push_values(rows, |mut row, new| {
                row.push_bind(new.held.user_id)
                    .push_bind(new.held.key.clone());
            });
            query
                .push(
                    ") SELECT n.user_id, n.key,
                        (SELECT count(*) FROM idempotency_keys k
                         WHERE k.user_id = n.user_id AND k.created_at > ",
                )
                .push_bind(Micros::from(now - chrono::Duration::hours(24)))
                .push(
                    ") FROM n
                     WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = n.user_id)
                       AND NOT EXISTS (SELECT 1 FROM idempotency_keys k
                                       WHERE k.user_id = n.user_id AND k.key = n.key)",
                );
            let rows: Vec<(Uuid, String, i64)> =
                query.build_query_as().fetch_all(&mut *conn).await?;
            free.extend(
                rows.into_iter()
                    .map(|(user, key, held)| ((user, key), held)),
            );
        }
        Ok(free)
    }

    async fn insert(
        &self,
        conn: &mut SqliteConnection,
        placed: &[&OrderDetails],
        outcomes: &[KeyedOutcome<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let columns = Columns::of(placed);
        let at = Micros::from(now);
        for rows in columns.orders.chunks(ROWS_PER_INSERT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO orders (id, user_id, event_id, status, currency, total_minor,
                                     expires_at, created_at, updated_at) ",
            );
            query.push_values(rows, |mut row, order| {
                row.push_bind(order.id)
                    .push_bind(order.user_id)
                    .push_bind(order.event_id)
                    .push("'reserved'")
                    .push_bind(order.currency.clone())
                    .push_bind(order.total_minor)
                    .push_bind(Micros::from(order.expires_at))
                    .push_bind(at)
                    .push_bind(at);
            });
            query.build().execute(&mut *conn).await?;
        }
        for rows in columns.lines.chunks(ROWS_PER_INSERT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO order_items (order_id, event_id, tier_id, tier_name, quantity,
                                          unit_price_minor, line) ",
            );
            query.push_values(rows, |mut row, line| {
                row.push_bind(line.order_id)
                    .push_bind(line.event_id)
                    .push_bind(line.tier_id)
                    .push_bind(line.tier_name.clone())
                    .push_bind(line.quantity)
                    .push_bind(line.unit_price_minor)
                    .push_bind(line.position);
            });
            query.build().execute(&mut *conn).await?;
        }
        for rows in columns.tickets.chunks(ROWS_PER_INSERT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO tickets (id, user_id, event_id, order_id, tier_id, status,
                                      expires_at, created_at, updated_at) ",
            );
            query.push_values(rows, |mut row, ticket| {
                row.push_bind(ticket.id)
                    .push_bind(ticket.user_id)
                    .push_bind(ticket.event_id)
                    .push_bind(ticket.order_id)
                    .push_bind(ticket.tier_id)
                    .push("'reserved'")
                    .push_bind(Micros::from(ticket.expires_at))
                    .push_bind(at)
                    .push_bind(at);
            });
            query.build().execute(&mut *conn).await?;
        }
        // The event rows first, then the tiers: the order every writer follows.
        for (table, counter, seats) in [
            ("events", "tickets_sold", &columns.event_seats),
            ("ticket_tiers", "sold", &columns.tier_seats),
        ] {
            let mut query = QueryBuilder::<Sqlite>::new("WITH taken(id, seats) AS (");
            query.push_values(seats.iter(), |mut row, (id, seats)| {
                row.push_bind(*id).push_bind(*seats);
            });
            query.push(format!(
                ") UPDATE {table} SET {counter} = {counter}
                     + (SELECT seats FROM taken WHERE taken.id = {table}.id), updated_at = "
            ));
            query.push_bind(at);
            query.push(" WHERE id IN (SELECT id FROM taken)");
            query.build().execute(&mut *conn).await?;
        }
        // The single writer keeps every other claim out: the new keys read free still are (and
        // the batch lets one request take each).
        let (held, new) = split_outcomes(outcomes);
        for (key, outcome) in held {
            sqlx::query(
                "UPDATE idempotency_keys SET outcome = ?3, lease_until = NULL
                 WHERE user_id = ?1 AND key = ?2",
            )
            .bind(key.user_id)
            .bind(key.key.as_str())
            .bind(outcome)
            .execute(&mut *conn)
            .await?;
        }
        for rows in new.chunks(ROWS_PER_INSERT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO idempotency_keys
                    (user_id, key, request_hash, claim, created_at, outcome) ",
            );
            query.push_values(rows, |mut row, (key, outcome)| {
                row.push_bind(key.held.user_id)
                    .push_bind(key.held.key.clone())
                    .push_bind(key.request_hash.clone())
                    .push_bind(key.held.claim)
                    .push_bind(at)
                    .push_bind(*outcome);
            });
            query.build().execute(&mut *conn).await?;
        }
        Ok(())
    }
}
