//! What the order batchers of both backends share: an order waiting with where its answer
//! goes, and placing a batch so that an order that fails fails alone.

use std::future::Future;

use tokio::sync::oneshot;

use super::{StoreError, StoreResult};
use crate::domain::{NewOrder, OrderOutcome};

/// An order waiting for its batch, and where its answer goes.
pub(super) struct Pending {
    pub order: NewOrder,
    reply: oneshot::Sender<StoreResult<OrderOutcome>>,
}

impl Pending {
    /// An order to queue, and the answer to wait for.
    pub fn new(order: NewOrder) -> (Self, Answer) {
        let (reply, answer) = oneshot::channel();
        (Self { order, reply }, Answer(answer))
    }

    /// Whether the request gave up waiting (it was cut off by its timeout).
    pub fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// The answer to a queued order.
pub(super) struct Answer(oneshot::Receiver<StoreResult<OrderOutcome>>);

impl Answer {
    pub async fn wait(self) -> StoreResult<OrderOutcome> {
        // A dropped reply means the batching task died: the store cannot take orders now.
        self.0
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::WorkerCrashed.into()))
    }
}

/// Writes orders in one transaction, with an answer for each (an order may be refused, or fail
/// alone, without failing the others); an error means nothing was written.
pub(super) trait BatchWriter {
    fn write(
        &self,
        orders: &[&NewOrder],
    ) -> impl Future<Output = StoreResult<Vec<StoreResult<OrderOutcome>>>> + Send;
}

/// Places `batch` with `writer` and answers each order. Orders whose requests were cut off
/// while they waited are not placed behind their backs. Should the batch's transaction fail,
/// each order is placed again in a transaction of its own, so that it fails alone.
pub(super) async fn place(writer: &impl BatchWriter, mut batch: Vec<Pending>) {
    batch.retain(|pending| !pending.abandoned());
    if batch.is_empty() {
        return;
    }
    let orders: Vec<&NewOrder> = batch.iter().map(|pending| &pending.order).collect();
    let outcomes = match writer.write(&orders).await {
        Ok(outcomes) => outcomes,
        Err(error) if orders.len() > 1 => {
            tracing::warn!(%error, size = orders.len(), "a batch of orders failed; placing each alone");
            let mut outcomes = Vec::with_capacity(orders.len());
            for (pending, order) in batch.iter().zip(&orders) {
                if pending.abandoned() {
                    outcomes.push(Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)));
                    continue;
                }
                let alone = writer.write(std::slice::from_ref(order)).await;
                outcomes.push(alone.and_then(|mut placed| {
                    placed.pop().unwrap_or_else(|| {
                        Err(StoreError::Corrupt("an order went unanswered".into()))
                    })
                }));
            }
            outcomes
        }
        Err(error) => vec![Err(error)],
    };
    drop(orders);
    for (pending, outcome) in batch.into_iter().zip(outcomes) {
        let _ = pending.reply.send(outcome);
    }
}
