//! Group commit for orders on SQLite.
//!
//! Every write goes through one connection, and a commit (with its WAL sync) costs more than
//! placing an order. Orders that arrive together are therefore placed by one task in one
//! transaction, one after another, so the result is exactly as if they had run alone (should
//! one fail, [`order_batch::place`] places each alone); a batch of one is the plain case.

use sqlx::SqlitePool;
use tokio::sync::mpsc;

use super::{WriteTx, place_in};
use crate::domain::{NewOrder, OrderOutcome};
use crate::store::StoreResult;
use crate::store::order_batch::{self, BatchWriter, Pending};

/// Most orders written in one transaction.
const MAX_BATCH: usize = 64;

/// Starts the batching task; orders are sent to the returned channel.
pub(super) fn spawn(writer: SqlitePool) -> mpsc::Sender<Pending> {
    let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(run(Writer(writer), receiver));
    sender
}

async fn run(writer: Writer, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        order_batch::place(&writer, std::mem::take(&mut batch)).await;
    }
}

struct Writer(SqlitePool);

impl BatchWriter for Writer {
    /// Places `orders` one after another in one transaction: all committed, or none.
    async fn write(&self, orders: &[&NewOrder]) -> StoreResult<Vec<StoreResult<OrderOutcome>>> {
        let mut tx = WriteTx::begin(&self.0).await?;
        let now = tx.now();
        let mut outcomes = Vec::with_capacity(orders.len());
        for order in orders {
            match place_in(&mut tx, order, now).await {
                Ok(outcome) => outcomes.push(Ok(outcome)),
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
}
