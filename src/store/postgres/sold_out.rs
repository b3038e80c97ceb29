//! Events this process knows to be sold out, so that "sold out" is answered without a
//! database round trip.
//!
//! An event is remembered when an order's transaction found no seat left, for as long as no
//! seat can come back on its own: until its earliest hold can lapse, or it starts (and never
//! longer than [`MAX_PERIOD`]). Sooner than
//! that a seat only comes back through a write (a cancellation, an expiry, more capacity), in
//! any process: a trigger then notifies [`CHANNEL`] with the event's id, and every process's
//! listener ([`super::notifications`]) makes it forget the event. While this process is not
//! listening it remembers nothing, and what it remembered before a lost connection is
//! forgotten.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sqlx::postgres::PgPool;
use uuid::Uuid;

/// The notification channel, named in migration `0004` too.
pub(super) const CHANNEL: &str = "nearbytix_seats";
/// Most events remembered at once.
const MAX_REMEMBERED: usize = 10_000;
/// `$1` events: those without a seat, each with the seconds it stays so for certain — until
/// its earliest hold can lapse, or it starts (then the answer changes).
const SOLD_OUT_FOR: &str = "SELECT e.id, EXTRACT(EPOCH FROM LEAST(
            (SELECT min(o.expires_at) FROM orders o
             WHERE o.event_id = e.id AND o.status = 'reserved'),
            e.start_time) - now())::float8
     FROM events e WHERE e.id = ANY($1) AND e.tickets_sold >= e.total_tickets";
/// Longest an event is remembered: the bound on a stale "sold out" should the listener's
/// connection die without the process noticing (a peer that drops it silently).
const MAX_PERIOD: Duration = Duration::from_secs(10);

/// When a transaction began, for [`SoldOut::remember`].
#[derive(Clone, Copy)]
pub(super) struct Mark {
    generation: u64,
    at: Instant,
}

#[derive(Default)]
pub(super) struct SoldOut {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    until: HashMap<Uuid, Instant>,
    /// Counts what may have made a sell-out seen earlier untrue (a notification, a lost
    /// connection): a sell-out read before such a change is not remembered after it.
    generation: u64,
    listening: bool,
}

impl SoldOut {
    /// Where things stand before a transaction reads events' seats: taken before it begins,
    /// so that a period the transaction measures from its start is not stretched by its
    /// duration.
    pub fn mark(&self) -> Mark {
        Mark {
            generation: self.state().generation,
            at: Instant::now(),
        }
    }

    /// Remembers that `event_id` has no seat for `period` (at most [`MAX_PERIOD`]) from
    /// `mark`, as read by a transaction that began at `mark` (nothing is remembered when a
    /// change arrived since).
    fn remember(&self, event_id: Uuid, mark: Mark, period: Duration) {
        let mut state = self.state();
        if !state.listening || state.generation != mark.generation {
            return;
        }
        let now = Instant::now();
        if state.until.len() >= MAX_REMEMBERED {
            state.until.retain(|_, until| *until > now);
            if state.until.len() >= MAX_REMEMBERED {
                return;
            }
        }
        state
            .until
            .insert(event_id, mark.at + period.min(MAX_PERIOD));
    }

    /// Remembers the events among `event_ids` that still have no seat, each for as long as it
    /// stays so for certain, as read after a transaction that began at `mark` sold them out.
    /// Read after its commit, so that no lock waits for it; a failed read remembers nothing.
    pub async fn learn(&self, pool: &PgPool, mark: Mark, event_ids: &[Uuid]) {
        if event_ids.is_empty() {
            return;
        }
        let periods: Result<Vec<(Uuid, Option<f64>)>, _> = sqlx::query_as(SOLD_OUT_FOR)
            .bind(event_ids)
            .fetch_all(pool)
            .await;
        let periods = match periods {
            Ok(periods) => periods,
            Err(error) => {
                tracing::warn!(%error, "could not read how long events stay sold out");
                return;
            }
        };
        for (event_id, seconds) in periods {
            let period = seconds
                .filter(|seconds| *seconds > 0.0)
                .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
            if let Some(period) = period {
                self.remember(event_id, mark, period);
            }
        }
    }

    /// Whether `event_id` is known to have no seat now.
    pub fn knows(&self, event_id: Uuid) -> bool {
        let mut state = self.state();
        match state.until.get(&event_id) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                state.until.remove(&event_id);
                false
            }
            None => false,
        }
    }

    pub(super) fn forget(&self, event_id: Option<Uuid>) {
        let mut state = self.state();
        state.generation += 1;
        match event_id {
            Some(event_id) => {
                state.until.remove(&event_id);
            }
            None => state.until.clear(),
        }
    }

    /// Starts or stops remembering; either way what was remembered is forgotten.
    pub(super) fn set_listening(&self, listening: bool) {
        self.forget(None);
        self.state().listening = listening;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
