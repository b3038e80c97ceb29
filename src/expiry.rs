//! The expiry sweeper: expires unpaid holds (and waiting-list offers) past their deadline and
//! gives the seats back; ends waiting lists the clock ends; raises availability versions at
//! the instants a status turns by the clock.
//! Safe to run in any number of processes against one database.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::{CHANGE_LOG_KEPT, DynStore, StoreError};

/// Longest pause after repeated failures (the database being away, say).
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Forgetting old idempotency keys and change log entries is housekeeping, not urgent.
const PURGE_EVERY: Duration = Duration::from_secs(300);
/// How often buyers' history rows are folded: a buyer's page counts the rows added since.
const FOLD_EVERY: Duration = Duration::from_secs(10);
/// Buyers folded in one transaction; a full fold goes again at the next sweep.
const FOLD_USERS: i64 = 1_000;

/// How long a processed webhook event is remembered (Stripe retries for 3 days).
const WEBHOOK_EVENTS_KEPT_DAYS: i64 = 30;

/// A running sweeper task.
pub struct Sweeper {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    clock: JoinHandle<()>,
}

impl Sweeper {
    pub fn start(store: DynStore, interval: Duration, batch_size: i64) -> Self {
        let (stop, stopped) = watch::channel(false);
        let clock = tokio::spawn(follow_the_clock(store.clone(), stopped.clone()));
        let task = tokio::spawn(run(store, interval, batch_size, stopped));
        Self { stop, task, clock }
    }

    /// Asks the sweeper to stop and waits until it has finished its current batch.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "expiry sweeper task failed");
        }
        if let Err(error) = self.clock.await {
            tracing::error!(%error, "clock instants task failed");
        }
    }
}

/// Forgets idempotency keys older than 24 h, event change log entries older than
/// [`CHANGE_LOG_KEPT`] and webhook events older than 30 days; whether every purge worked.
async fn purge(store: &DynStore) -> bool {
    let now = chrono::Utc::now();
    let keys = store.purge_keys(now - chrono::Duration::hours(24)).await;
    match &keys {
        Ok(purged) if *purged > 0 => {
            tracing::info!(purged, "forgot idempotency keys older than 24 h")
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(error = format!("{error:#}"), "idempotency key purge failed"),
    }
    let kept = chrono::Duration::from_std(CHANGE_LOG_KEPT).unwrap_or(chrono::Duration::MAX);
    let changes = store.purge_event_changes(now - kept).await;
    if let Err(error) = &changes {
        tracing::warn!(
            error = format!("{error:#}"),
            "event change log purge failed"
        );
    }
    let webhooks = store
        .purge_webhook_events(now - chrono::Duration::days(WEBHOOK_EVENTS_KEPT_DAYS))
        .await;
    if let Err(error) = &webhooks {
        tracing::warn!(error = format!("{error:#}"), "webhook event purge failed");
    }
    keys.is_ok() && changes.is_ok() && webhooks.is_ok()
}

/// How far back the first pass looks for clock instants (a start, a tier's sales start or
/// end) whose availability version no process raised yet: a process started after a longer
/// outage leaves older ones unannounced (their snapshots are read anew by every stream opened
/// since, and show the right statuses).
const CLOCK_LOOKBACK: chrono::Duration = chrono::Duration::days(1);

/// Pause between two passes over the clock instants: a status that turns by the clock is
/// announced within 1 s of its instant (AVAILABILITY.md), whatever the sweep interval.
const CLOCK_PASS_EVERY: Duration = Duration::from_millis(500);

/// Raises availability versions at clock instants, on a timer of its own (the expiry sweep
/// may take longer than a second), until shutdown.
async fn follow_the_clock(store: DynStore, mut shutdown: watch::Receiver<bool>) {
    let mut since = chrono::Utc::now() - CLOCK_LOOKBACK;
    while !*shutdown.borrow() {
        since = bump_clock_instants(&store, since).await;
        tokio::select! {
            _ = tokio::time::sleep(CLOCK_PASS_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Raises the availability version of the events whose statuses changed by the clock since
/// `since`; where the next pass starts.
async fn bump_clock_instants(
    store: &DynStore,
    since: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    match store.bump_clock_instants(since, now).await {
        Ok(bumped) => {
            if bumped > 0 {
                tracing::debug!(bumped, "availability versions raised at clock instants");
            }
            now
        }
        Err(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                "raising availability versions at clock instants failed"
            );
            since
        }
    }
}

/// Runs until `shutdown` turns true; stops between batches, never inside one.
async fn run(
    store: DynStore,
    interval: Duration,
    batch_size: i64,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        batch_size,
        "expiry sweeper started"
    );
    let mut failures: u32 = 0;
    let mut last_purge: Option<tokio::time::Instant> = None;
    let mut last_fold: Option<tokio::time::Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) && purge(&store).await {
            last_purge = Some(tokio::time::Instant::now());
        }
        if last_fold.is_none_or(|at| at.elapsed() >= FOLD_EVERY) {
            match store.fold_buyer_history(FOLD_USERS).await {
                Ok(folded) if folded < FOLD_USERS as u64 => {
                    last_fold = Some(tokio::time::Instant::now());
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "buyer history fold failed");
                    last_fold = Some(tokio::time::Instant::now());
                }
            }
        }
        let pause = match sweep(&store, batch_size).await {
            // A full batch means more may be due: go again at once.
            Ok(expired) if expired >= batch_size as u64 => Duration::ZERO,
            Ok(_) => {
                if failures > 0 {
                    tracing::info!("expiry sweeper recovered");
                }
                failures = 0;
                interval
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                metrics::counter!("nearbytix_sweeper_errors_total").increment(1);
                let backoff = interval
                    .saturating_mul(2u32.saturating_pow(failures.min(10)))
                    .min(MAX_BACKOFF);
                tracing::warn!(
                    error = format!("{error:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "expiry sweep failed"
                );
                backoff
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!("expiry sweeper stopped");
}

/// One pass: one transaction of at most `batch_size` holds (offers included), then the
/// waiting lists' (lines of started events and ended tiers close, seats a `sales_start` put
/// on sale are offered); how many holds expired.
pub async fn sweep(store: &DynStore, batch_size: i64) -> Result<u64, StoreError> {
    let expired = store.expire_due_tickets(batch_size).await;
    if let Ok(expired) = expired
        && expired > 0
    {
        metrics::counter!("nearbytix_tickets_expired_total").increment(expired);
        tracing::info!(expired, "expired unpaid holds");
    }
    // Whatever became of the holds: the lines' own work does not wait on them.
    let lines = store.sweep_waitlists().await;
    let expired = expired?;
    lines?;
    Ok(expired)
}
