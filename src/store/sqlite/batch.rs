//! Group commit for orders on SQLite.
//!
//! Every write goes through one connection, and a commit (with its WAL sync) costs more than
//! placing an order. Orders that arrive together are therefore placed by one task in one
//! transaction, one after another, so the result is exactly as if they had run alone. Should
//! any order's statements fail, nothing of the batch is kept and each order is placed again in
//! a transaction of its own, so that it fails alone; a batch of one is the plain case.

use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::{WriteTx, place_in};
use crate::domain::{NewOrder, OrderOutcome};
use crate::store::StoreError;

/// Most orders written in one transaction.
const MAX_BATCH: usize = 64;

pub(super) type Reply = oneshot::Sender<Result<OrderOutcome, StoreError>>;

pub(super) struct Pending {
    pub order: NewOrder,
    pub reply: Reply,
}

/// Starts the batching task; orders are sent to the returned channel.
pub(super) fn spawn(writer: SqlitePool) -> mpsc::Sender<Pending> {
    let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(run(writer, receiver));
    sender
}

async fn run(writer: SqlitePool, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // A request cut off (by its timeout) while queued is not placed behind its back.
        batch.retain(|pending| !pending.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let orders: Vec<&NewOrder> = batch.iter().map(|pending| &pending.order).collect();
        let outcomes = match write_batch(&writer, &orders).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(error) if orders.len() > 1 => {
                tracing::warn!(%error, size = orders.len(), "a batch of orders failed; placing each alone");
                let mut outcomes = Vec::with_capacity(orders.len());
                for (pending, order) in batch.iter().zip(&orders) {
                    if pending.reply.is_closed() {
                        outcomes.push(Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)));
                        continue;
                    }
                    let alone = write_batch(&writer, std::slice::from_ref(order)).await;
                    outcomes.push(alone.map(|mut placed| placed.remove(0)));
                }
                outcomes
            }
            Err(error) => vec![Err(error)],
        };
        for (pending, outcome) in batch.drain(..).zip(outcomes) {
            let _ = pending.reply.send(outcome);
        }
    }
}

/// Places `orders` one after another in one transaction: all committed, or none.
async fn write_batch(
    writer: &SqlitePool,
    orders: &[&NewOrder],
) -> Result<Vec<OrderOutcome>, StoreError> {
    let mut tx = WriteTx::begin(writer).await?;
    let now = tx.now();
    let mut outcomes = Vec::with_capacity(orders.len());
    for order in orders {
        match place_in(&mut tx, order, now).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => {
                // Whether the rollback works or not, the error is the answer.
                let _ = tx.rollback().await;
                return Err(error);
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}
