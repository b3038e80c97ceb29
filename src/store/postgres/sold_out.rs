//! Sales this process knows to have something sold out — the event, or one of its tiers — so
//! that an order they refuse is answered without a database round trip.
//!
//! A sale is remembered as the batch that found it so left it, for as long as its answers
//! cannot change on their own: until its earliest hold can lapse, it starts, or a tier's sales
//! window opens or closes (and never longer than [`MAX_PERIOD`]). Sooner than that they change
//! only through a write in some process — a seat given back (cancellation, expiry) where one
//! was missing, more capacity, a changed rule of the sale, a tier added or removed, the event
//! deleted: triggers (migration `0007`) then notify [`CHANNEL`] with the event's id, and every
//! process's listener ([`super::notifications`]) makes it forget the sale (an empty payload,
//! sent on `TRUNCATE`, forgets every sale). Sales made elsewhere meanwhile only take more
//! seats. While this process is not listening it remembers nothing, and what it remembered
//! before a lost connection is forgotten.
//!
//! Only answers that hold for every buyer are given from memory
//! ([`SaleState::refusal_for_anyone`]); an order the sale might grant goes to the database.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use uuid::Uuid;

use crate::domain::{NewOrder, OrderRefusal, SaleState};

/// The notification channel, named in migration `0007` too.
pub(super) const CHANNEL: &str = "nearbytix_seats";
/// Most sales remembered at once (each its tiers' rules without their descriptions): ~50 MB at
/// worst, with 20 tiers of 100-character names each (10 000 such sales were measured at
/// 126 MiB).
const MAX_REMEMBERED: usize = 4_000;
/// `$1` events, `$2` the instant their sales were judged at: each event with the seconds its
/// sale stays as judged — until its earliest hold can lapse, it starts, or a tier's window
/// opens or closes after `$2` (none of which takes a write).
const UNCHANGED_FOR: &str = "SELECT e.id, EXTRACT(EPOCH FROM LEAST(
            (SELECT min(o.expires_at) FROM orders o
             WHERE o.event_id = e.id AND o.status = 'reserved'),
            e.start_time,
            (SELECT min(w.boundary) FROM ticket_tiers t
             CROSS JOIN LATERAL (VALUES (t.sales_start), (t.sales_end)) AS w(boundary)
             WHERE t.event_id = e.id AND w.boundary > $2)) - now())::float8
     FROM events e WHERE e.id = ANY($1)";
/// Longest a sale is remembered: the bound on a stale answer should the listener's connection
/// die without the process noticing (a peer that drops it silently).
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

/// A sale as a batch left it, judged at `judged_at` (the database's clock), valid until `until`.
struct Remembered {
    sale: SaleState,
    judged_at: DateTime<Utc>,
    until: Instant,
}

#[derive(Default)]
struct State {
    sales: HashMap<Uuid, Remembered>,
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

    /// Remembers `sale` of `event_id`, judged at `judged_at`, for `period` (at most
    /// [`MAX_PERIOD`]) from `mark`, as read by a transaction that began at `mark` (nothing is
    /// remembered when a change arrived since).
    fn remember(
        &self,
        event_id: Uuid,
        sale: SaleState,
        judged_at: DateTime<Utc>,
        mark: Mark,
        period: Duration,
    ) {
        let mut state = self.state();
        if !state.listening || state.generation != mark.generation {
            return;
        }
        let now = Instant::now();
        if state.sales.len() >= MAX_REMEMBERED {
            state.sales.retain(|_, remembered| remembered.until > now);
            if state.sales.len() >= MAX_REMEMBERED {
                return;
            }
        }
        let remembered = Remembered {
            sale,
            judged_at,
            until: mark.at + period.min(MAX_PERIOD),
        };
        state.sales.insert(event_id, remembered);
    }

    /// Remembers the sales among `sales` (as a transaction that began at `mark` left them at
    /// `judged_at`) that have something sold out, each for as long as its answers stay so for
    /// certain. Read after the commit, so that no lock waits for it; a failed read remembers
    /// nothing. A sale remembered with the same parts sold out is not read again.
    pub async fn learn(
        &self,
        pool: &PgPool,
        mark: Mark,
        judged_at: DateTime<Utc>,
        sales: impl IntoIterator<Item = (Uuid, SaleState)>,
    ) {
        if !self.state().listening {
            return;
        }
        let mut sales: HashMap<Uuid, SaleState> = sales
            .into_iter()
            .filter(|(event_id, sale)| {
                sale.sold_out_anywhere() && !self.remembers_as(*event_id, sale)
            })
            .collect();
        if sales.is_empty() {
            return;
        }
        let event_ids: Vec<Uuid> = sales.keys().copied().collect();
        let periods: Result<Vec<(Uuid, Option<f64>)>, _> = sqlx::query_as(UNCHANGED_FOR)
            .bind(&event_ids)
            .bind(judged_at)
            .fetch_all(pool)
            .await;
        let periods = match periods {
            Ok(periods) => periods,
            Err(error) => {
                tracing::warn!(%error, "could not read how long sold-out sales stay so");
                return;
            }
        };
        for (event_id, seconds) in periods {
            let period = seconds
                .filter(|seconds| *seconds > 0.0)
                .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
            if let (Some(period), Some(mut sale)) = (period, sales.remove(&event_id)) {
                // Not needed to judge an order; only kept in check.
                for tier in &mut sale.tiers {
                    tier.description = None;
                }
                self.remember(event_id, sale, judged_at, mark, period);
            }
        }
    }

    /// The refusal `order` gets from what is remembered of its event's sale, if that is
    /// certain without the database.
    pub fn answer(&self, order: &NewOrder) -> Option<OrderRefusal> {
        let mut state = self.state();
        let remembered = state.sales.get(&order.event_id)?;
        if remembered.until <= Instant::now() {
            state.sales.remove(&order.event_id);
            return None;
        }
        remembered
            .sale
            .refusal_for_anyone(&order.lines, remembered.judged_at)
    }

    /// Whether `sale` of `event_id` is remembered, unexpired, with the same parts sold out.
    fn remembers_as(&self, event_id: Uuid, sale: &SaleState) -> bool {
        let state = self.state();
        state.sales.get(&event_id).is_some_and(|remembered| {
            remembered.until > Instant::now()
                && sold_out_parts(&remembered.sale) == sold_out_parts(sale)
        })
    }

    pub(super) fn forget(&self, event_id: Option<Uuid>) {
        let mut state = self.state();
        state.generation += 1;
        match event_id {
            Some(event_id) => {
                state.sales.remove(&event_id);
            }
            None => state.sales.clear(),
        }
    }

    /// Starts or stops remembering; either way what was remembered is forgotten.
    pub(super) fn set_listening(&self, listening: bool) {
        let mut state = self.state();
        state.generation += 1;
        state.sales.clear();
        state.listening = listening;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether the event has no seat left, and which of its tiers have none.
fn sold_out_parts(sale: &SaleState) -> (bool, Vec<Uuid>) {
    let tiers = sale
        .tiers
        .iter()
        .filter(|tier| tier.sold_out())
        .map(|tier| tier.id)
        .collect();
    (sale.seats_left <= 0, tiers)
}
