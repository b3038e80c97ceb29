//! The change feed: the events search can return, the event change log, and the purge of
//! both logs (events and the seat ledger's record).

use uuid::Uuid;

use super::StoredTime;
use super::events::{EventRow, TierSaleRow, events_with_sales};
use crate::store::{ChangeCursor, EventChanges, SearchableEvents, StoreError};

/// `$1` a time: the entries of the event change log and the seat ledger's record written
/// before it.
pub(in crate::store) const PURGE_CHANGE_LOGS: [&str; 2] = [
    "DELETE FROM event_changes WHERE changed_at < $1",
    "DELETE FROM seat_returns WHERE returned_at < $1",
];

/// The clock instants (an event's start, a tier's sales start or end) in `($2, $1]` of each
/// event whose availability version was not raised for them yet: `due (id, instant)`, the
/// latest per event. Followed by the dialect's update.
macro_rules! clock_instants_due {
    () => {
        "WITH instants (event_id, instant) AS (
        SELECT id, start_time FROM events WHERE start_time > $2 AND start_time <= $1
        UNION ALL
        SELECT event_id, sales_start FROM ticket_tiers
         WHERE sales_start > $2 AND sales_start <= $1
        UNION ALL
        SELECT event_id, sales_end FROM ticket_tiers WHERE sales_end > $2 AND sales_end <= $1
    ), latest AS (
        SELECT event_id, max(instant) AS instant FROM instants GROUP BY event_id
    ), due AS (
        SELECT e.id, latest.instant FROM events e JOIN latest ON latest.event_id = e.id
         WHERE e.availability_clock_at < latest.instant"
    };
}

/// The end of [`clock_instants_due!`] and the update that raises the versions of `due`.
macro_rules! bump_due {
    () => {
        "
    )
    UPDATE events SET availability_version = availability_version + 1,
        availability_clock_at = due.instant
      FROM due
     WHERE events.id = due.id AND events.availability_clock_at < due.instant"
    };
}

/// `$1` now, `$2` the last pass's now: raises the availability version of each event with a
/// clock instant in `($2, $1]` past the latest one it was raised for, once per instant
/// whichever processes pass (the mark is re-checked under the row lock). PostgreSQL locks the
/// rows in id order first, as order batches do, so that passes and batches cannot deadlock.
pub(in crate::store) const BUMP_CLOCK_INSTANTS_LOCKED: &str = concat!(
    clock_instants_due!(),
    " ORDER BY e.id FOR NO KEY UPDATE OF e",
    bump_due!()
);

/// [`BUMP_CLOCK_INSTANTS_LOCKED`] for SQLite, whose one writer needs no row locks.
pub(in crate::store) const BUMP_CLOCK_INSTANTS: &str = concat!(clock_instants_due!(), bump_due!());

/// Whether [`BUMP_CLOCK_INSTANTS`] has anything to do: SQLite's one writer is not taken for
/// nothing twice a second.
pub(in crate::store) const CLOCK_INSTANTS_DUE: &str =
    concat!(clock_instants_due!(), ") SELECT EXISTS (SELECT 1 FROM due)");

/// Every event search can return at `$1` (now).
pub(in crate::store) const SEARCHABLE_EVENTS: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE start_time > $1 AND tickets_sold < total_tickets"
);

/// The tiers' sales of the events [`SEARCHABLE_EVENTS`] reads at `$1` (now).
pub(in crate::store) const SEARCHABLE_TIER_SALES: &str = concat!(
    select_tier_sales!(),
    " JOIN events e ON e.id = t.event_id
     WHERE e.start_time > $1 AND e.tickets_sold < e.total_tickets ORDER BY t.position"
);

/// What [`super::EventStore::searchable_events`] answers: `rows` and their tiers' `sales` read
/// after the log stood at `cursor`.
pub(in crate::store) fn searchable_events<T: StoredTime>(
    cursor: ChangeCursor,
    rows: Vec<EventRow<T>>,
    sales: Vec<TierSaleRow<T>>,
) -> Result<SearchableEvents, StoreError> {
    Ok(SearchableEvents {
        cursor,
        events: events_with_sales(rows, sales)?,
    })
}

/// What [`super::EventStore::event_changes`] answers: `changed` named in the log since the
/// last read, `rows` those of them that still exist, with their tiers' `sales`.
pub(in crate::store) fn event_changes<T: StoredTime>(
    cursor: ChangeCursor,
    changed: Vec<Uuid>,
    rows: Vec<EventRow<T>>,
    sales: Vec<TierSaleRow<T>>,
) -> Result<EventChanges, StoreError> {
    let current = events_with_sales(rows, sales)?;
    let found: std::collections::HashSet<Uuid> = current.iter().map(|event| event.id).collect();
    let deleted = changed
        .into_iter()
        .filter(|id| !found.contains(id))
        .collect();
    Ok(EventChanges {
        cursor,
        current,
        deleted,
    })
}
