//! The seat ledger: the one way seats come back on sale.
//!
//! Every path that gives seats back — a cancellation, an expiry (by the sweeper, by an order
//! short of seats, before a tier is checked or an event deleted), a raised `total_tickets` or
//! tier quantity, an added tier — calls [`release`] or [`capacity_back`] inside the transaction
//! that frees the seats. There, and only there, (a) the sold counters move (events first, in id
//! order, then tiers: the order every writer locks rows in), (b) the waiting list's offer step
//! runs, so that no freed seat reaches the public while someone in line could take it, and (c)
//! the change is recorded in `seat_returns`, for the change feed. Seats are taken in one place too: the order
//! batch ([`super::order_batch`]).
//!
//! The SQL that differs between the backends is theirs ([`Dialect`]); the sequence is written
//! once, here.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use super::sql::Dialect;
use crate::domain::{SeatsBack, SeatsBackCause};

/// Gives back the seats of tickets that left the sale (`cause` a cancellation or an expiry):
/// they come off the events' and tiers' sold counters, then go on sale through
/// [`seats_came_back`].
pub(super) async fn release<DB: Dialect>(
    conn: &mut DB::Connection,
    freed: impl IntoIterator<Item = SeatsBack>,
    cause: SeatsBackCause,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    debug_assert!(cause.releases_tickets());
    let freed = SeatsBack::merged(freed);
    if freed.is_empty() {
        return Ok(());
    }
    DB::uncount_seats(conn, &freed, now).await?;
    seats_came_back::<DB>(conn, &freed, cause, now).await?;
    Ok(())
}

/// Expires the due holds (orders and their tickets) of `events`, or of every event, at most
/// `limit` orders, oldest first, and gives their seats back; how many tickets expired.
pub(super) async fn expire_due_holds<DB: Dialect>(
    conn: &mut DB::Connection,
    events: Option<&[Uuid]>,
    limit: i64,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let freed = DB::expire_due(conn, events, limit, now).await?;
    let tickets: i64 = freed.iter().map(|back| back.seats).sum();
    if tickets == 0 {
        return Ok(0);
    }
    release::<DB>(conn, freed, SeatsBackCause::Expired, now).await?;
    // After the events' rows are held (by the release): the lock order of every writer.
    DB::end_lapsed_offers(conn, now).await?;
    Ok(u64::try_from(tickets).unwrap_or_default())
}

/// Seats put on sale by a write to the event or a tier: more capacity (a raised total or
/// quantity, a new tier; no counter moves), or, when `back` holds no seat, a rule that may let
/// the line be served now (a sales window, a cap). How many offers the step made.
pub(super) async fn capacity_back<DB: Dialect>(
    conn: &mut DB::Connection,
    back: SeatsBack,
    cause: SeatsBackCause,
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    debug_assert!(!cause.releases_tickets());
    if back.seats <= 0 {
        return offer_to_waiting_list::<DB>(conn, &[back], now).await;
    }
    seats_came_back::<DB>(conn, &[back], cause, now).await
}

/// Seats are on sale again: first to the waiting list, then recorded for the change feed. How
/// many offers were made.
async fn seats_came_back<DB: Dialect>(
    conn: &mut DB::Connection,
    back: &[SeatsBack],
    cause: SeatsBackCause,
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let offers = offer_to_waiting_list::<DB>(conn, back, now).await?;
    DB::record_seats_back(conn, back, cause, now).await?;
    Ok(offers)
}

/// The waiting list's offer step, in the transaction that freed `back`: seats go to the
/// people in line before the public (WAITLIST.md § The offer step). How many offers it made.
async fn offer_to_waiting_list<DB: Dialect>(
    conn: &mut DB::Connection,
    back: &[SeatsBack],
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let mut events: Vec<Uuid> = back.iter().map(|back| back.event_id).collect();
    events.sort_unstable();
    events.dedup();
    DB::offer_to_line(conn, &events, now).await
}
