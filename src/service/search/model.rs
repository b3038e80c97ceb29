//! The process's search read model: a [`SearchIndex`] that follows the database.
//!
//! One task ([`ReadModel::follow`]) loads every searchable event, then reads the store's log of
//! event changes from where it stopped: at once when a writer of this process asks
//! ([`ReadModel::catch_up`]) or the store announces a change (SQLite: any commit of this
//! process; PostgreSQL: a notification, from any process, of a change search can see), and
//! every [`POLL`] whatever happens, so a lost announcement costs at most one poll. A search is answered from memory only while the last
//! successful read began less than [`FRESH_FOR`] ago; otherwise (not loaded yet, the database
//! away) it goes to the database like before, and stays correct.
//!
//! What it reads is passed on ([`ReadModel::followed`]): live availability follows the same
//! feed for the events it watches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::index::{SearchIndex, SearchPage};
use crate::store::{CHANGE_LOG_KEPT, ChangeCursor, DynStore, NearbyQuery};

/// Longest pause between two reads of the change log.
const POLL: Duration = Duration::from_millis(250);
/// Shortest pause between two reads prompted by announcements: a burst of sales (an
/// announcement per committed batch) is read as one change per event.
const MIN_GAP: Duration = Duration::from_millis(50);
/// How old the last read may be for a search to be answered from memory: the contract allows
/// 1 s between a commit and search showing it.
const FRESH_FOR: Duration = Duration::from_millis(750);
/// Longest a writer in this process waits for search to show its change.
const WRITER_WAIT: Duration = Duration::from_secs(1);
/// Longest pause between attempts while the database fails.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Changes applied under one hold of the write lock: a large catch-up does not stall searches.
const CHANGES_PER_LOCK: usize = 1_000;
/// Reads kept for a slow follower of [`ReadModel::followed`]; one further behind is told that
/// it missed some.
const FOLLOWED_KEPT: usize = 256;

/// What one read of the change feed found.
#[derive(Debug, Clone)]
pub enum Followed {
    /// These events changed (or were deleted).
    Events(Arc<[Uuid]>),
    /// The model was loaded anew: any event may have changed.
    Everything,
}

/// The sender of [`ReadModel::followed`].
struct FollowedSender(broadcast::Sender<Followed>);

impl Default for FollowedSender {
    fn default() -> Self {
        Self(broadcast::channel(FOLLOWED_KEPT).0)
    }
}

#[derive(Default)]
pub struct ReadModel {
    state: RwLock<State>,
    /// Reads asked for by writers in this process, counted.
    asked: AtomicU64,
    /// The last count of `asked` that a successful read started after.
    answered: watch::Sender<u64>,
    /// Whether the first load was attempted (successfully or not).
    tried: watch::Sender<bool>,
    wake: Notify,
    /// The following task has ended: nothing more will be read.
    stopped: AtomicBool,
    followed: FollowedSender,
}

#[derive(Default)]
struct State {
    index: Option<SearchIndex>,
    /// When the read the index reflects began.
    read_at: Option<Instant>,
}

/// The running task; stops when dropped.
pub struct Following(JoinHandle<()>);

impl Drop for Following {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ReadModel {
    /// Loads the model and keeps it following `store` until the returned handle is dropped.
    pub fn follow(self: &Arc<Self>, store: DynStore) -> Following {
        Following(tokio::spawn(Arc::clone(self).run(store)))
    }

    /// What each read of the change feed finds, from now on.
    pub fn followed(&self) -> broadcast::Receiver<Followed> {
        self.followed.0.subscribe()
    }

    /// Resolves once the first load was attempted: a server starts answering after it, so
    /// that its first searches are already served from memory.
    pub async fn first_load(&self) {
        let mut tried = self.tried.subscribe();
        let _ = tried.wait_for(|tried| *tried).await;
    }

    /// The page of `query` at `now`, or `None` when the model is not fresh enough to answer.
    pub fn search(&self, query: &NearbyQuery, now: DateTime<Utc>) -> Option<SearchPage> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let fresh = state.read_at?.elapsed() < FRESH_FOR;
        let index = state.index.as_ref()?;
        fresh.then(|| index.search(query, now))
    }

    /// Waits (a bounded time) until the model has read every change committed before this
    /// call: a writer calls it after its commit, so its own change shows in its next search.
    /// Whether it has.
    pub async fn catch_up(&self) -> bool {
        if self.stopped.load(Ordering::SeqCst) {
            return false;
        }
        let ticket = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        let mut answered = self.answered.subscribe();
        let caught_up = answered.wait_for(|done| *done >= ticket);
        matches!(
            tokio::time::timeout(WRITER_WAIT, caught_up).await,
            Ok(Ok(_))
        ) && !self.stopped.load(Ordering::SeqCst)
    }

    async fn run(self: Arc<Self>, store: DynStore) {
        let _stopped = Stopped(&self);
        let mut announcements = store.change_announcements();
        // Where the next read starts, and when the read that left it there began.
        let mut cursor: Option<(ChangeCursor, Instant)> = None;
        let mut failures: u32 = 0;
        loop {
            let asked = self.asked.load(Ordering::SeqCst);
            let started = Instant::now();
            let (since, at) = match cursor.take() {
                Some((since, at)) if at.elapsed() < CHANGE_LOG_KEPT / 2 => (Ok(since), at),
                _ => (self.load(&store).await, started),
            };
            // After a load too: it takes a while, and what changed meanwhile is read at once,
            // so that the model is fresh when it starts answering.
            let read = match since {
                Ok(since) => {
                    cursor = Some((since.clone(), at));
                    self.apply_changes(&store, since).await
                }
                Err(error) => Err(error),
            };
            self.tried.send_replace(true);
            match read {
                Ok(next) => {
                    cursor = Some((next, started));
                    self.answered.send_replace(asked);
                    if failures > 0 {
                        tracing::info!("search read model follows the database again");
                    }
                    failures = 0;
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "search read model could not read changes"
                        );
                    }
                    failures = failures.saturating_add(1);
                }
            }
            let pause = if failures == 0 {
                POLL
            } else {
                (POLL * failures).min(MAX_BACKOFF)
            };
            tokio::select! {
                changed = announcements.changed() => {
                    if changed.is_err() {
                        // The store is gone: nothing more to follow.
                        return;
                    }
                    // Announcements come with every commit under a flash sale: read them
                    // together, unless a writer of this process waits.
                    tokio::select! {
                        () = tokio::time::sleep(MIN_GAP) => {}
                        () = self.wake.notified() => {}
                    }
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Loads every searchable event into a new index, built beside the one searches use (on
    /// a blocking thread: a million events take a second or two).
    async fn load(&self, store: &DynStore) -> anyhow::Result<ChangeCursor> {
        let started = Instant::now();
        let searchable = store.searchable_events().await?;
        let read = started.elapsed();
        let now = Utc::now();
        let index =
            tokio::task::spawn_blocking(move || SearchIndex::new(searchable.events, now)).await?;
        tracing::info!(
            events = index.event_count(),
            read_ms = read.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "search read model loaded"
        );
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.index = Some(index);
        state.read_at = Some(started);
        // Nobody following is no error.
        let _ = self.followed.0.send(Followed::Everything);
        Ok(searchable.cursor)
    }

    /// Applies the changes since `since`; the index reflects the read once all are applied.
    async fn apply_changes(
        &self,
        store: &DynStore,
        since: ChangeCursor,
    ) -> anyhow::Result<ChangeCursor> {
        let started = Instant::now();
        let changes = store.event_changes(since).await?;
        if !(changes.current.is_empty() && changes.deleted.is_empty()) {
            let ids: Arc<[Uuid]> = changes
                .current
                .iter()
                .map(|event| event.id)
                .chain(changes.deleted.iter().copied())
                .collect();
            let _ = self.followed.0.send(Followed::Events(ids));
        }
        let mut current = changes.current.into_iter().peekable();
        let mut deleted = changes.deleted.into_iter().peekable();
        loop {
            let now = Utc::now();
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            let Some(index) = state.index.as_mut() else {
                break;
            };
            for event in current.by_ref().take(CHANGES_PER_LOCK) {
                index.put(event, now);
            }
            for id in deleted.by_ref().take(CHANGES_PER_LOCK) {
                index.remove(id);
            }
            if current.peek().is_none() && deleted.peek().is_none() {
                index.refresh(now);
                state.read_at = Some(started);
                break;
            }
        }
        Ok(changes.cursor)
    }
}

/// Marks the model stopped however its task ends (dropped, aborted, panicked): a server
/// waiting for the first load, and writers waiting for a read, are not kept waiting.
struct Stopped<'a>(&'a ReadModel);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.tried.send_replace(true);
        self.0.answered.send_replace(u64::MAX);
    }
}
