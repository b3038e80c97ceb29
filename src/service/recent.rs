//! What was read from the database a moment ago, reused on hot paths for a bounded time.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Values read per id (a user's, a check-in list's), each reused for `kept_for`, at most `max`
/// at once.
pub struct Recent<V> {
    kept_for: Duration,
    max: usize,
    entries: Mutex<HashMap<Uuid, (V, Instant)>>,
}

impl<V: Clone> Recent<V> {
    pub fn new(kept_for: Duration, max: usize) -> Self {
        Self {
            kept_for,
            max,
            entries: Mutex::default(),
        }
    }

    /// The value of `key` if it was read less than `kept_for` ago.
    pub fn get(&self, key: Uuid) -> Option<V> {
        self.entries()
            .get(&key)
            .filter(|(_, read_at)| read_at.elapsed() < self.kept_for)
            .map(|(value, _)| value.clone())
    }

    /// Keeps what a read begun at `read_at` found, unless a later read is kept already (a
    /// change racing a lookup).
    pub fn keep(&self, key: Uuid, value: V, read_at: Instant) {
        let mut entries = self.entries();
        if entries.len() >= self.max && !entries.contains_key(&key) {
            // Every kept entry lapses within `kept_for` anyway.
            entries.clear();
        }
        let entry = entries.entry(key).or_insert((value.clone(), read_at));
        if entry.1 <= read_at {
            *entry = (value, read_at);
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Uuid, (V, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
