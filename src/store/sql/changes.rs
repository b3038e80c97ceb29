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

/// `$1` now, `$2` the last pass's now: raises the availability version of each event with a
/// clock instant in `($2, $1]` past the latest one it was raised for. The mark is the event's
/// own column, re-checked under its row lock, so that concurrent passes raise it once.
pub(in crate::store) const BUMP_CLOCK_INSTANTS: &str = "
    WITH instants (event_id, instant) AS (
        SELECT id, start_time FROM events WHERE start_time > $2 AND start_time <= $1
        UNION ALL
        SELECT event_id, sales_start FROM ticket_tiers
         WHERE sales_start > $2 AND sales_start <= $1
        UNION ALL
        SELECT event_id, sales_end FROM ticket_tiers WHERE sales_end > $2 AND sales_end <= $1
    ), latest AS (
        SELECT event_id, max(instant) AS instant FROM instants GROUP BY event_id
    )
    UPDATE events SET availability_version = availability_version + 1,
        availability_clock_at = latest.instant
      FROM latest
     WHERE events.id = latest.event_id AND events.availability_clock_at < latest.instant";

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
