//! The change feed: the events search can return, the event change log, and the purge of
//! both logs (events and the seat ledger's record).

use uuid::Uuid;

use super::StoredTime;
use super::events::EventRow;
use crate::store::{ChangeCursor, EventChanges, SearchableEvents, StoreError};

/// `$1` a time: the entries of the event change log and the seat ledger's record written
/// before it.
pub(in crate::store) const PURGE_CHANGE_LOGS: [&str; 2] = [
    "DELETE FROM event_changes WHERE changed_at < $1",
    "DELETE FROM seat_returns WHERE returned_at < $1",
];

/// Every event search can return at `$1` (now).
pub(in crate::store) const SEARCHABLE_EVENTS: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE start_time > $1 AND tickets_sold < total_tickets"
);

/// What [`super::EventStore::searchable_events`] answers: `rows` read after the log stood at
/// `cursor`.
pub(in crate::store) fn searchable_events<T: StoredTime>(
    cursor: ChangeCursor,
    rows: Vec<EventRow<T>>,
) -> Result<SearchableEvents, StoreError> {
    Ok(SearchableEvents {
        cursor,
        events: rows
            .into_iter()
            .map(EventRow::into_event)
            .collect::<Result<_, _>>()?,
    })
}

/// What [`super::EventStore::event_changes`] answers: `changed` named in the log since the
/// last read, `rows` those of them that still exist.
pub(in crate::store) fn event_changes<T: StoredTime>(
    cursor: ChangeCursor,
    changed: Vec<Uuid>,
    rows: Vec<EventRow<T>>,
) -> Result<EventChanges, StoreError> {
    let current = rows
        .into_iter()
        .map(EventRow::into_event)
        .collect::<Result<Vec<_>, _>>()?;
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
