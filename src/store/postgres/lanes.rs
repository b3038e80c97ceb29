//! Group commit on PostgreSQL, in a few lanes per process (orders in [`super::batch`], scans
//! at the door in [`super::scan_lanes`], cancellations in [`super::cancel_lanes`], waiting-list
//! joins in [`super::join_lanes`]).
//!
//! Writes that queue on one row lock (an event's, for orders, cancellations and joins; a
//! ticket's, for scans) commit one at a time. Requests are therefore sorted into [`LANES`]
//! lanes by that row; while a transaction of a lane is in flight, the requests arriving for it
//! wait here, and are then written together in one transaction by the lane's [`BatchWriter`]. A lone request waits
//! for no one. Across processes nothing changes: the row locks keep every guarantee.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::store::batch::{self, Batch, BatchWriter, Pending};
use crate::store::{StoreError, StoreResult};

/// Lanes per process and kind of write: transactions of one process in flight at once for
/// it. A hot event (a hot ticket) has one lane; requests spread over many share them.
pub(super) const LANES: u32 = 4;
/// Most requests written in one transaction.
const MAX_BATCH: usize = 128;
/// Most requests waiting in one lane; more are refused as overload.
const MAX_WAITING: usize = 4096;
/// Most requests of one key waiting in a lane: a hot event cannot fill its lane for the events
/// that share it.
const MAX_WAITING_PER_KEY: usize = MAX_WAITING / 4;
/// Least time between two warnings that requests were refused as overload.
const OVERLOAD_WARNING_EVERY: Duration = Duration::from_secs(10);

/// A [`BatchWriter`] whose requests are sorted into lanes.
pub(super) trait LaneWriter:
    BatchWriter<Request: 'static, Outcome: 'static> + Send + Sync + 'static
{
    /// The row a request queues on (an order's event): its lane, and its share of the lane.
    fn lane_key(request: &Self::Request) -> Uuid;
}

/// The lanes of one process for `W`'s writes: the requests waiting in each lane whose
/// transaction is in flight (`None`: the lane is idle).
pub(super) struct Lanes<W: LaneWriter> {
    writer: W,
    lanes: [Mutex<Option<Waiting<W>>>; LANES as usize],
    runtime: Arc<LaneRuntime>,
    overload: Overload,
}

/// The requests waiting in a busy lane, and how many of them each key has.
struct Waiting<W: LaneWriter> {
    requests: Batch<W>,
    per_key: HashMap<Uuid, usize>,
}

impl<W: LaneWriter> Default for Waiting<W> {
    fn default() -> Self {
        Self {
            requests: Vec::new(),
            per_key: HashMap::new(),
        }
    }
}

impl<W: LaneWriter> Waiting<W> {
    /// Whether one more request of `key` fits.
    fn has_room_for(&self, key: Uuid) -> bool {
        self.requests.len() < MAX_WAITING
            && self.per_key.get(&key).copied().unwrap_or(0) < MAX_WAITING_PER_KEY
    }

    fn push(&mut self, pending: Pending<W::Request, W::Outcome>) {
        *self
            .per_key
            .entry(W::lane_key(&pending.request))
            .or_default() += 1;
        self.requests.push(pending);
    }

    /// The next batch: the oldest requests, at most [`MAX_BATCH`].
    fn next_batch(&mut self) -> Batch<W> {
        let size = self.requests.len().min(MAX_BATCH);
        let batch: Batch<W> = self.requests.drain(..size).collect();
        for pending in &batch {
            let key = W::lane_key(&pending.request);
            if let Some(count) = self.per_key.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    self.per_key.remove(&key);
                }
            }
        }
        batch
    }
}

/// Requests refused because their lane was full, told to the log once per
/// [`OVERLOAD_WARNING_EVERY`] with their count rather than once each.
#[derive(Default)]
struct Overload {
    refused: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl Overload {
    fn refused(&self, what: &'static str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < OVERLOAD_WARNING_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let refused = self.refused.swap(0, Ordering::Relaxed);
        tracing::warn!(
            refused,
            what,
            per_lane = MAX_WAITING,
            per_key = MAX_WAITING_PER_KEY,
            "write queue full: requests refused as overload (503)"
        );
    }
}

/// The lanes' own runtime (two threads): its only tasks are the lanes' transactions, over
/// connections of its own. On the request runtime, a batch waited behind the HTTP work of every
/// request in flight for each of its six round trips; measured under a flash sale on 2 cores,
/// reading a batch's sales took 1.9 ms there and 0.3 ms here (BENCHMARKS.md). Two threads, so
/// that lanes of different events still prepare their batches on both cores.
pub(super) struct LaneRuntime(Option<Runtime>);

impl LaneRuntime {
    /// Starts the runtime, and opens `pool` (lazily) on it.
    pub fn start(
        pool: PgPoolOptions,
        connect: PgConnectOptions,
    ) -> anyhow::Result<(Arc<Self>, PgPool)> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nearbytix-lanes")
            .enable_all()
            .build()
            .context("starting the write lanes' runtime")?;
        let pool = {
            let _inside = runtime.enter();
            pool.connect_lazy_with(connect)
        };
        Ok((Arc::new(Self(Some(runtime))), pool))
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = &self.0 {
            runtime.spawn(task);
        }
    }
}

impl Drop for LaneRuntime {
    /// Ends the runtime, and its connections with it, without waiting: the lanes may be
    /// dropped inside an asynchronous task.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl<W: LaneWriter> Lanes<W> {
    /// Lanes for `writer`, whose transactions run on `runtime`.
    pub fn new(writer: W, runtime: Arc<LaneRuntime>) -> Arc<Self> {
        Arc::new(Self {
            writer,
            lanes: std::array::from_fn(|_| Mutex::new(None)),
            runtime,
            overload: Overload::default(),
        })
    }

    /// Writes `request` in its lane's next transaction: at once when the lane is idle, else
    /// together with the requests that arrived while its transaction was in flight.
    pub async fn write(self: &Arc<Self>, request: W::Request) -> StoreResult<W::Outcome> {
        // Ids end in random bits (version 7 included).
        let key = W::lane_key(&request);
        let lane = usize::try_from(key.as_u128() % u128::from(LANES)).unwrap_or(0);
        let (pending, answer) = Pending::new(request);
        let lead = {
            let mut waiting = self.waiting(lane);
            match waiting.as_mut() {
                Some(queue) if !queue.has_room_for(key) => {
                    drop(waiting);
                    self.overload.refused(W::WHAT);
                    return Err(StoreError::Busy);
                }
                Some(queue) => {
                    queue.push(pending);
                    None
                }
                None => {
                    *waiting = Some(Waiting::default());
                    Some(pending)
                }
            }
        };
        if let Some(first) = lead {
            // A task of its own, so that a request cut off by its timeout does not strand
            // the requests that wait behind its transaction.
            self.runtime.spawn(Arc::clone(self).drive(lane, first));
        }
        answer.wait().await
    }

    /// Writes batches of `lane` until no request waits in it.
    async fn drive(self: Arc<Self>, lane: usize, first: Pending<W::Request, W::Outcome>) {
        let mut guard = LaneGuard {
            lanes: &self,
            lane,
            open: true,
        };
        let mut next = vec![first];
        loop {
            batch::write(&self.writer, next).await;
            let mut waiting = self.waiting(lane);
            let queue = waiting.get_or_insert_default();
            if queue.requests.is_empty() {
                *waiting = None;
                guard.open = false;
                return;
            }
            next = queue.next_batch();
        }
    }

    fn waiting(&self, lane: usize) -> MutexGuard<'_, Option<Waiting<W>>> {
        self.lanes[lane]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes a lane should its task end early (a panic): the requests waiting in it are answered
/// as failed instead of waiting for a transaction that will not come.
struct LaneGuard<'a, W: LaneWriter> {
    lanes: &'a Lanes<W>,
    lane: usize,
    open: bool,
}

impl<W: LaneWriter> Drop for LaneGuard<'_, W> {
    fn drop(&mut self) {
        if self.open {
            *self.lanes.waiting(self.lane) = None;
        }
    }
}
