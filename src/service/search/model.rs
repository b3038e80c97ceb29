//! The process's search read model: a [`SearchIndex`] that follows the database.
//!
//! One task ([`ReadModel::follow`]) loads every searchable event, then reads the store's log of
//! event changes from where it stopped: at once when the store announces a change (a commit in
//! this process, a notification from another), and every [`POLL`] whatever happens, so a lost
//! announcement costs at most one poll. A search is answered from memory only while the last
//! successful read began less than [`FRESH_FOR`] ago; otherwise (not loaded yet, the database
//! away) it goes to the database like before, and stays correct.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::index::SearchIndex;
use crate::domain::NearbyEvent;
use crate::store::{CHANGE_LOG_KEPT, ChangeCursor, DynStore, NearbyQuery, Page, StoreResult};

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
const CHANGES_PER_LOCK: usize = 10_000;

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

    /// Resolves once the first load was attempted: a server starts answering after it, so
    /// that its first searches are already served from memory.
    pub async fn first_load(&self) {
        let mut tried = self.tried.subscribe();
        let _ = tried.wait_for(|tried| *tried).await;
    }

    /// The page of `query`, or `None` when the model is not fresh enough to answer.
    pub fn search(&self, query: &NearbyQuery) -> Option<Page<NearbyEvent>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let fresh = state.read_at?.elapsed() < FRESH_FOR;
        let index = state.index.as_ref()?;
        fresh.then(|| index.search(query, Utc::now()))
    }

    /// Waits (a bounded time) until the model has read every change committed before this
    /// call: a writer calls it after its commit, so its own change shows in its next search.
    pub async fn catch_up(&self) {
        let ticket = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        let mut answered = self.answered.subscribe();
        let _ = tokio::time::timeout(WRITER_WAIT, answered.wait_for(|done| *done >= ticket)).await;
    }

    async fn run(self: Arc<Self>, store: DynStore) {
        let mut announcements = store.change_announcements();
        let mut cursor: Option<(ChangeCursor, Instant)> = None;
        let mut failures: u32 = 0;
        loop {
            let asked = self.asked.load(Ordering::SeqCst);
            let started = Instant::now();
            let read = match cursor {
                Some((since, at)) if at.elapsed() < CHANGE_LOG_KEPT / 2 => {
                    self.apply_changes(&store, since).await
                }
                // A load takes a while: what changed meanwhile is read at once, so that the
                // model is fresh when it starts answering.
                _ => match self.load(&store).await {
                    Ok(loaded) => self.apply_changes(&store, loaded).await,
                    Err(error) => Err(error),
                },
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
                        tracing::warn!(%error, "search read model could not read changes");
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
                    if self.asked.load(Ordering::SeqCst) == asked {
                        tokio::time::sleep(MIN_GAP).await;
                    }
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Loads every searchable event into a new index, built beside the one searches use.
    async fn load(&self, store: &DynStore) -> StoreResult<ChangeCursor> {
        let started = Instant::now();
        let searchable = store.searchable_events().await?;
        let read = started.elapsed();
        let index = SearchIndex::new(searchable.events, Utc::now());
        tracing::info!(
            events = index.event_count(),
            read_ms = read.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "search read model loaded"
        );
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.index = Some(index);
        state.read_at = Some(started);
        Ok(searchable.cursor)
    }

    /// Applies the changes since `since`; the index reflects the read once all are applied.
    async fn apply_changes(
        &self,
        store: &DynStore,
        since: ChangeCursor,
    ) -> StoreResult<ChangeCursor> {
        let started = Instant::now();
        let changes = store.event_changes(since).await?;
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
                index.drop_started(now);
                state.read_at = Some(started);
                break;
            }
        }
        Ok(changes.cursor)
    }
}
