//! Group commit for orders on SQLite.
//!
//! Every write goes through one connection, and a commit (with its WAL sync) costs more than
//! placing an order. Orders that arrive together are therefore placed by one task in one
//! transaction, each under a savepoint of its own: the result is exactly as if they had run one
//! after another, an order whose statements fail (say, its buyer was deleted meanwhile) fails
//! alone, and a batch of one is the plain case.

use chrono::Utc;
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
        match write_batch(&writer, &batch).await {
            Ok(outcomes) => {
                for (pending, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = pending.reply.send(outcome);
                }
            }
            // Nothing of the batch was committed: every order gets the error.
            Err(error) => {
                tracing::warn!(%error, size = batch.len(), "a batch of orders was not committed");
                let unavailable = matches!(error, StoreError::Unavailable(_));
                for pending in batch.drain(..) {
                    let message = format!("group commit failed: {error}");
                    let error = sqlx::Error::Protocol(message);
                    let _ = pending.reply.send(Err(if unavailable {
                        StoreError::Unavailable(error)
                    } else {
                        StoreError::Database(error)
                    }));
                }
            }
        }
    }
}

/// Places every order of `batch` in one transaction; the outer error means none committed.
async fn write_batch(
    writer: &SqlitePool,
    batch: &[Pending],
) -> Result<Vec<Result<OrderOutcome, StoreError>>, StoreError> {
    let now = Utc::now();
    let mut tx = WriteTx::begin(writer).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for pending in batch {
        sqlx::query("SAVEPOINT pending_order")
            .execute(&mut *tx)
            .await?;
        let outcome = place_in(&mut tx, &pending.order, now).await;
        if outcome.is_err() {
            sqlx::query("ROLLBACK TO pending_order")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("RELEASE pending_order")
            .execute(&mut *tx)
            .await?;
        outcomes.push(outcome);
    }
    tx.commit().await?;
    Ok(outcomes)
}
