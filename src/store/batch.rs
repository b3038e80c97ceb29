//! Writes that arrive together, done in one transaction (group commit): a request queued for
//! its batch and the answer it waits for, and running a batch so that each request still fails
//! alone. Orders ([`super::order_batch`]) and cancellations are written so, and on PostgreSQL
//! scans at the door and waiting-list joins too.

use std::future::Future;

use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

/// Writes requests in one transaction, with an answer for each (a request may be refused, or
/// fail alone, without failing the others). An error means the transaction did not commit —
/// unless the COMMIT itself failed on the way, when, as for any write, the outcome is unknown.
pub(super) trait BatchWriter {
    type Request: Send + Sync;
    type Outcome: Send;
    /// What is written, for the log ("orders").
    const WHAT: &'static str;

    fn write(
        &self,
        requests: &[&Self::Request],
    ) -> impl Future<Output = StoreResult<Vec<StoreResult<Self::Outcome>>>> + Send;
}

/// A request waiting for its batch, and where its answer goes.
pub(super) struct Pending<Request, Outcome> {
    pub request: Request,
    reply: oneshot::Sender<StoreResult<Outcome>>,
}

impl<Request, Outcome> Pending<Request, Outcome> {
    /// A request to queue, and the answer to wait for.
    pub fn new(request: Request) -> (Self, Answer<Outcome>) {
        let (reply, answer) = oneshot::channel();
        (Self { request, reply }, Answer(answer))
    }

    /// Whether the request gave up waiting (it was cut off by its timeout).
    pub fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// The answer to a queued request.
pub(super) struct Answer<Outcome>(oneshot::Receiver<StoreResult<Outcome>>);

impl<Outcome> Answer<Outcome> {
    pub async fn wait(self) -> StoreResult<Outcome> {
        // A dropped reply means the batching task died: the store cannot take the write now.
        self.0
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::WorkerCrashed.into()))
    }
}

/// A batch of `W`'s requests, as they wait.
pub(super) type Batch<W> = Vec<Pending<<W as BatchWriter>::Request, <W as BatchWriter>::Outcome>>;

/// Writes `batch` with `writer` and answers each request. Requests cut off while they waited
/// are not written behind their backs. Should the batch's transaction fail, each request is
/// written again in a transaction of its own, so that it fails alone.
pub(super) async fn write<W: BatchWriter>(writer: &W, mut batch: Batch<W>) {
    batch.retain(|pending| !pending.abandoned());
    if batch.is_empty() {
        return;
    }
    let requests: Vec<&W::Request> = batch.iter().map(|pending| &pending.request).collect();
    let outcomes = match writer.write(&requests).await {
        Ok(outcomes) => outcomes,
        // The database is away: writing each request alone would only wait for it again. (A
        // batch it undid to break a deadlock is written again alone, below.)
        Err(error @ StoreError::Unavailable(_)) if !error.rolled_back_by_conflict() => {
            std::iter::once(Err(error))
                .chain(
                    (1..requests.len())
                        .map(|_| Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut))),
                )
                .collect()
        }
        Err(error) if requests.len() > 1 => {
            tracing::warn!(%error, size = requests.len(), what = W::WHAT, "a batch failed; writing each alone");
            let mut outcomes = Vec::with_capacity(requests.len());
            for (pending, request) in batch.iter().zip(&requests) {
                if pending.abandoned() {
                    outcomes.push(Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)));
                    continue;
                }
                let alone = writer.write(std::slice::from_ref(request)).await;
                outcomes.push(alone.and_then(|written| the_one(written, W::WHAT)));
            }
            outcomes
        }
        Err(error) => vec![Err(error)],
    };
    drop(requests);
    for (pending, outcome) in batch.into_iter().zip(outcomes) {
        let _ = pending.reply.send(outcome);
    }
}

/// The outcome of a write of one request (of `what`).
pub(super) fn the_one<Outcome>(
    mut outcomes: Vec<StoreResult<Outcome>>,
    what: &str,
) -> StoreResult<Outcome> {
    outcomes
        .pop()
        .unwrap_or_else(|| Err(StoreError::Corrupt(format!("{what} went unanswered"))))
}
